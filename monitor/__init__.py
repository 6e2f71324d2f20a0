"""monitor: poll news outlets' feeds, keep one clean copy of every article, alert on watch rules."""

__version__ = "0.1.0"
