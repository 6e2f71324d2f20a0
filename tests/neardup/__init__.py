"""The labelled near-duplicate and story evaluation set (issue 5), and the script that scores it."""
