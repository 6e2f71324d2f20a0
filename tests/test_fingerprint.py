"""The fingerprint stage: which texts are near-duplicates, how well it estimates, what it keys."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from monitor.fingerprint import (
    DEFAULT,
    Fingerprint,
    Scheme,
    band_keys,
    fingerprint,
    is_near_duplicate,
    similarity,
)
from tests.neardup.cases import CHROME, by_id, near_duplicate, rewrite, sources, sources_captured


def fp_of(text: str) -> Fingerprint:
    found = fingerprint(text)
    assert found is not None, "a story-length text gets a fingerprint"
    return found


def story(cid: str) -> str:
    return "\n".join(sources()[cid])


def test_a_verbatim_copy_under_another_outlets_boilerplate_is_a_near_duplicate():
    head, tail = CHROME["wordpress"]
    copy = "\n".join([*head, *sources()["003"], *tail])
    assert is_near_duplicate(fp_of(story("003")), fp_of(copy))


def test_the_republished_002_with_its_machine_rewrites_is_a_near_duplicate_of_the_original():
    republished = "\n".join(sources_captured("002"))
    assert "L avrov" in republished and "L avrov" not in story("002")
    assert is_near_duplicate(fp_of(story("002")), fp_of(republished))


def test_001_and_002_report_one_event_but_are_not_near_duplicates():
    texts = by_id()
    a, b = texts["001/original"], texts["002/as-republished"]
    assert a.story == b.story  # the evaluation set labels them one story
    assert not near_duplicate(a, b)
    assert not is_near_duplicate(fp_of(a.text), fp_of(b.text))
    assert similarity(fp_of(a.text), fp_of(b.text)) < 0.1


@pytest.mark.parametrize(
    ("a", "b"), [("000", "003"), ("001", "003"), ("000", "004"), ("003", "004")]
)
def test_different_articles_about_the_same_actors_are_not_near_duplicates(a, b):
    assert not is_near_duplicate(fp_of(story(a)), fp_of(story(b)))


def test_a_copy_cut_to_sixty_percent_is_a_near_duplicate_and_a_three_paragraph_teaser_is_not():
    texts = by_id()
    full = fp_of(texts["000/original"].text)
    assert is_near_duplicate(full, fp_of(texts["000/trunc60"].text))
    teaser = texts["brief/psaki-only-aggression-at-the-border-is-russias-buildup"]
    assert teaser.text.split("\n")[0] in texts["000/original"].text  # verbatim paragraphs
    assert not is_near_duplicate(full, fp_of(teaser.text))


def test_a_rewrite_heavier_than_002s_is_still_a_near_duplicate():
    rewritten = "\n".join(rewrite(sources()["001"], "test", synonyms=0.7, damage=0.04))
    assert is_near_duplicate(fp_of(story("001")), fp_of(rewritten))


def test_two_line_stubs_get_no_fingerprint_so_are_never_near_duplicates():
    stub = (
        "U.S. Secretary of State Antony Blinken met Russian Foreign Minister Sergei Lavrov in "
        "Geneva on January 21, officials said. This is a developing story and will be updated."
    )
    assert fingerprint(stub) is None
    assert fingerprint("") is None


def test_the_estimate_follows_the_true_jaccard_similarity_of_the_shingles():
    texts = by_id()
    errors = []
    for a, b in [
        ("001/original", "001/trunc60"),
        ("001/original", "001/rewrite-heavy"),
        ("002/original", "002/as-republished"),
        ("003/original", "003/extended"),
        ("000/trunc80", "000/rewrite-light-trunc60-extended"),
        ("004/original", "004/middle-cut"),
    ]:
        sa = DEFAULT.shingle_hashes(texts[a].text)
        sb = DEFAULT.shingle_hashes(texts[b].text)
        true = len(sa & sb) / len(sa | sb)
        errors.append(abs(similarity(fp_of(texts[a].text), fp_of(texts[b].text)) - true))
    # 128 bins: the standard error at J = 0.5 is about 0.044
    assert max(errors) < 0.15
    assert sum(errors) / len(errors) < 0.06


def test_a_fingerprint_survives_storage_as_bytes():
    fp = fp_of(story("004"))
    again = Fingerprint.from_bytes(fp.to_bytes(), fp.shingles)
    assert again == fp
    assert len(fp.to_bytes()) == 4 * DEFAULT.bins


def test_band_keys_are_signed_64_bit_and_the_same_in_another_process():
    """Stored keys must match keys computed after a restart (no per-process hash seed)."""
    keys = band_keys(fp_of(story("000")))
    assert len(keys) == DEFAULT.bands == len(set(keys))
    assert all(-(2**63) <= k < 2**63 for k in keys)
    script = (
        "from monitor.fingerprint import band_keys, fingerprint; from tests.neardup.cases import "
        "sources; print(list(band_keys(fingerprint(chr(10).join(sources()['000'])))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.strip() == str(list(keys))


def test_near_duplicates_share_a_band_and_unrelated_texts_share_none():
    a, b = fp_of(story("002")), fp_of("\n".join(sources_captured("002")))
    assert set(band_keys(a)) & set(band_keys(b))
    assert not set(band_keys(a)) & set(band_keys(fp_of(story("004"))))


def test_a_scheme_must_fit_its_bands_in_its_bins():
    with pytest.raises(ValueError):
        Scheme(bins=128, bands=70, rows=2)
    with pytest.raises(ValueError):
        Scheme(bins=100)
