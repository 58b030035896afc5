"""Per-source checkpoints: how far each log file (known by fingerprint) has been ingested.

Saved as one small JSON file, written to a temp file, fsynced and renamed, and only after the
Parquet the offsets cover is durable (the pipeline calls `update` after writing).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from msgtrace.store import Store

SOURCES_FILE = "sources.json"


@dataclass
class SourceState:
    """How far one source has been read (offset in its decompressed bytes) and what was seen."""

    fingerprint: str
    path: str = ""
    format: str | None = None
    offset: int = 0
    line: int = 0
    unknown: int = 0
    updated: str = ""
    parser_state: dict = field(default_factory=dict)


class Checkpoints:
    """The checkpoint file of a store."""

    def __init__(self, root: Path) -> None:
        self.state = Store(root).state
        self.path = self.state.path(SOURCES_FILE)
        self._sources: dict[str, SourceState] = {}
        text = self.state.read_text(SOURCES_FILE)
        if text is not None:
            data = json.loads(text)
            for fp, entry in data.get("sources", {}).items():
                self._sources[fp] = SourceState(**entry)

    def get(self, fp: str) -> SourceState | None:
        """The saved state of a source, if any."""
        return self._sources.get(fp)

    def all(self) -> list[SourceState]:
        """Every known source."""
        return list(self._sources.values())

    def update(self, states: Iterable[SourceState]) -> None:
        """Record new states and save atomically."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        for s in states:
            s.updated = now
            self._sources[s.fingerprint] = s
        body = {"version": 1, "sources": {fp: asdict(s) for fp, s in self._sources.items()}}
        self.state.write_text(SOURCES_FILE, json.dumps(body, indent=1, sort_keys=True))


def jsonable(state: dict) -> dict:
    """Parser state for the checkpoint file (datetimes as ISO strings)."""
    out: dict = {}
    for k, v in state.items():
        if isinstance(v, dict):
            out[k] = jsonable(v)
        elif isinstance(v, dt.datetime):
            out[k] = {"__dt__": v.isoformat()}
        else:
            out[k] = v
    return out


def from_jsonable(state: dict) -> dict:
    """The inverse of jsonable."""
    out: dict = {}
    for k, v in state.items():
        if isinstance(v, dict) and "__dt__" in v:
            out[k] = dt.datetime.fromisoformat(v["__dt__"])
        elif isinstance(v, dict):
            out[k] = from_jsonable(v)
        else:
            out[k] = v
    return out
