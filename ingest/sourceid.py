"""Source ids: how the store names a log file it has read.

A source is known by the fingerprint of its first line (ingest.reader.fingerprint), so a renamed,
rotated or compressed copy of a file is the same source. Files that begin with the same line but
hold other lines (rsyslog's start line on top of every file) are told apart by the bytes read:
the first such file keeps the plain fingerprint, the others get `<fingerprint>~<n>`. The family
of a source is its plain fingerprint: every file that began with that line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NewType

SourceId = NewType("SourceId", str)
_SEP = "~"


def family_of(source: str) -> str:
    """The plain fingerprint a source id derives from (the id itself for the first file)."""
    return source.split(_SEP, 1)[0]


def is_derived(source: str) -> bool:
    """Whether the id is `<fingerprint>~<n>`: a later file that began with its family's first line."""
    return _SEP in source


def in_family(source: str, family: str) -> bool:
    """Whether `source` is `family` itself or derived from it."""
    return source == family or source.startswith(family + _SEP)


def variant(source: str) -> int:
    """n of `<fingerprint>~<n>`; 0 for the plain fingerprint."""
    return int(source.split(_SEP, 1)[1]) if is_derived(source) else 0


def next_in_family(family: str, taken: Iterable[str]) -> SourceId:
    """The id for a new file of `family` given the ids already taken: the plain fingerprint when it
    is free, else `family~<n>` one past the highest n taken."""
    ids = {s for s in taken if in_family(s, family)}
    if family not in ids:
        return SourceId(family)
    return SourceId(f"{family}{_SEP}{1 + max((variant(s) for s in ids), default=0)}")
