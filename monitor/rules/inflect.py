"""Which spellings a keyword matches: the word and its regular English inflections.

The rule, kept simple enough to predict: a plain keyword of Latin letters, at least 3 long, is
reduced to its base by removing a plural -s/-es/-ies (words of 4 letters or fewer, and words
in -ss, -us, -is, are taken as written: "news" is not "new"), and then matches the base, its -s/-es
plural or third person, its -ed past and its -ing form ("troop" and "troops" both match troop,
troops, trooped, trooping; "sanction" matches sanctioned, sanctioning). Irregular forms and
derivations ("invade" / "invasion") are not generated: write both, or a wildcard (`inva*`).
Actor aliases, wildcards and case-sensitive spellings are never inflected; in a phrase only the
last word is ("military buildup" matches "military buildups")."""

from __future__ import annotations

import re

_LATIN = re.compile(r"[a-z]+")
_VOWELS = frozenset("aeiou")
MIN_LENGTH = 3


def base_form(key: str) -> str:
    """`key` without a regular plural ending: troops → troop, sanctions → sanction,
    countries → country, buses → bus; words in -ss, -us, -is are left alone."""
    if len(key) > 4 and key.endswith("ies"):
        return key[:-3] + "y"
    if len(key) > 4 and key.endswith(("sses", "shes", "ches", "xes", "zes")):
        return key[:-2]
    # short words in -s are rarely plurals of a keyword ("news", "arms"): taken as written
    if len(key) > 4 and key.endswith("s") and not key.endswith(("ss", "us", "is")):
        return key[:-1]
    return key


def forms(key: str) -> frozenset[str]:
    """Every spelling a keyword key matches (the key itself always included)."""
    if len(key) < MIN_LENGTH or not _LATIN.fullmatch(key):
        return frozenset({key})
    base = base_form(key)
    found = {key, base, _plural(base), *_suffixed(base, "ed"), *_suffixed(base, "ing")}
    return frozenset(found)


def _plural(base: str) -> str:
    if base.endswith(("s", "x", "z", "ch", "sh")):
        return base + "es"
    if base.endswith("y") and len(base) > 1 and base[-2] not in _VOWELS:
        return base[:-1] + "ies"
    return base + "s"


def _suffixed(base: str, suffix: str) -> list[str]:
    """base + -ed or -ing with the usual spelling changes; both spellings where English doubles
    the final consonant only sometimes (banned, but targeted)."""
    if suffix == "ed" and base.endswith("e"):
        return [base + "d"]
    if suffix == "ed" and base.endswith("y") and base[-2:-1] not in ("", *_VOWELS):
        return [base[:-1] + "ied"]
    if suffix == "ing" and base.endswith("ie"):
        return [base[:-2] + "ying"]
    if suffix == "ing" and base.endswith("e") and not base.endswith("ee"):
        return [base[:-1] + "ing"]
    spelled = [base + suffix]
    if _ends_consonant_vowel_consonant(base):
        spelled.append(base + base[-1] + suffix)
    return spelled


def _ends_consonant_vowel_consonant(word: str) -> bool:
    if len(word) < 3:
        return False
    a, b, c = word[-3], word[-2], word[-1]
    return a not in _VOWELS and b in _VOWELS and c not in _VOWELS and c not in "wxy"
