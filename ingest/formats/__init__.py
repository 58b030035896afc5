"""One parser per log format, and detection of a file's format from its first lines.

Every format module defines:

    NAME: str
    def detect(sample: list[str]) -> bool            first lines of a file (decoded, no newline)
    def parse(lines: pl.DataFrame, ctx: ParseContext) -> Parsed

`lines` has columns line_no (Int64, 0-based in the source) and line (String, no newline).
`Parsed.events` follows ingest.schema.EVENT_SCHEMA exactly (use schema.conform); lines that are
the format's own but irrelevant (connect/disconnect, statistics) are dropped silently;
lines that match no known shape go to `Parsed.unknown` (columns line_no, line), never an error.
Parsers are vectorised (Polars expressions over the whole batch), do no I/O and never read the clock.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import polars as pl

from msgtrace.ingest.formats.context import ParseContext

__all__ = ["FORMAT_NAMES", "ParseContext", "Parsed", "ParserFailed", "detect", "parser"]

# Detection order matters: the most specific signatures first.
FORMAT_NAMES: tuple[str, ...] = ("exchange", "exim", "sendmail", "postfix")


class ParserFailed(ValueError):
    """A compiled parser met input it cannot read (a bug): the pipeline treats it as it treats a
    Polars error, splitting the batch until the failing lines are alone."""


@dataclass
class Parsed:
    """What a parser returns for one batch of lines."""

    events: pl.DataFrame
    unknown: pl.DataFrame  # line_no, line


def parser(name: str) -> ModuleType:
    """The module implementing a format."""
    if name not in FORMAT_NAMES:
        raise ValueError(f"unknown format {name!r}; known: {', '.join(FORMAT_NAMES)}")
    return importlib.import_module(f"msgtrace.ingest.formats.{name}")


def detect(sample: list[str]) -> str | None:
    """The format of a file from its first lines, or None when no parser recognises it."""
    for name in FORMAT_NAMES:
        try:
            module = parser(name)
        except ModuleNotFoundError:
            continue
        if module.detect(sample):
            return name
    return None
