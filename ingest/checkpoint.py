"""Per-source checkpoints: how far each log file (known by fingerprint) has been ingested.

Saved as one small JSON file, written to a temp file, fsynced and renamed, and only after the
Parquet the offsets cover is durable (the pipeline calls `update` after writing).

A checkpoint also records what the bytes read look like (hashes of the file's head and of the
bytes just before the offset, see ingest.reader.Marks), so that a file which merely starts with
the same line is not taken for the source (ingest.pipeline checks before resuming). Checkpoints
written before these existed (version 1) load with empty marks and are checked by line count.
Sources not seen for longer than the queue lifetime are forgotten, so the file stays small.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import PurePath

from msgtrace.defaults import QUEUE_LIFETIME
from msgtrace.store import StateFiles, Store, StoreError

SOURCES_FILE = "sources.json"
VERSION = 2  # 2: identity marks (head, tail), seen, damaged_at; 1 is read too
_SEEN_EVERY = dt.timedelta(hours=1)  # `seen` is refreshed at most this often


class CheckpointError(StoreError):
    """The checkpoint file cannot be used: what is wrong with it, and what to do."""


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
    head: str = ""  # hash of the first head_len bytes ("" in checkpoints of version 1)
    head_len: int = 0
    tail: str = ""  # hash of the tail_len bytes just before offset
    tail_len: int = 0
    seen: str = ""  # when the file was last found (ISO time); "" until then
    damaged_at: int = 0  # an archive found damaged (truncated, corrupt) right after this offset; 0: none


class Checkpoints:
    """The checkpoint file of a store."""

    def __init__(self, where: PurePath | Store | StateFiles, expire_after: dt.timedelta = QUEUE_LIFETIME) -> None:
        """`where`: a store (its default writer's), a writer's Store, or a writer's state folder."""
        self.state = (
            where if isinstance(where, StateFiles) else (where if isinstance(where, Store) else Store(where)).state
        )
        self.path = self.state.path(SOURCES_FILE)
        self.expire_after = expire_after
        self._unsaved = False  # a `seen` refreshed since the last save
        self._sources: dict[str, SourceState] = _load(self.state)

    def get(self, fp: str) -> SourceState | None:
        """The saved state of a source, if any."""
        return self._sources.get(fp)

    def all(self) -> list[SourceState]:
        """Every known source."""
        return list(self._sources.values())

    def saw(self, fp: str) -> None:
        """Note that a known source's file still exists (it is kept while it does)."""
        s = self._sources.get(fp)
        if s is None:
            return
        now = dt.datetime.now(dt.UTC)
        if not s.seen or now - _time(s.seen) >= _SEEN_EVERY:
            s.seen = now.isoformat(timespec="seconds")
            self._unsaved = True

    @property
    def unsaved(self) -> bool:
        """Whether something changed that only a save() would keep."""
        return self._unsaved

    def update(self, states: Iterable[SourceState]) -> None:
        """Record new states, forget sources gone too long, and save atomically."""
        now = dt.datetime.now(dt.UTC)
        stamp = now.isoformat(timespec="seconds")
        for s in states:
            s.updated = s.seen = stamp
            self._sources[s.fingerprint] = s
        self.save(now)

    def save(self, now: dt.datetime | None = None) -> None:
        """Write the file (atomically), without the sources not seen for longer than expire_after:
        a rotated file is a new source, and the file would otherwise grow with every rotation.
        Should such a file come back, it is read again whole; its lines already stored are skipped."""
        now = now or dt.datetime.now(dt.UTC)
        self._sources = {
            fp: s for fp, s in self._sources.items() if now - _time(s.seen or s.updated) <= self.expire_after
        }
        body = {"version": VERSION, "sources": {fp: asdict(s) for fp, s in self._sources.items()}}
        self.state.write_text(SOURCES_FILE, json.dumps(body, indent=1, sort_keys=True))
        self._unsaved = False


def _time(iso: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(iso)
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _load(state: StateFiles) -> dict[str, SourceState]:
    """The sources of the checkpoint file ({} when there is none); CheckpointError says what is
    wrong with a bad one.

    Never start over silently: an empty checkpoint file would have every file read again."""
    path = state.path(SOURCES_FILE)
    todo = (
        "move it aside to have every file read again from the start (lines already stored are "
        "skipped), or restore it from a backup"
    )
    try:
        text = state.read_text(SOURCES_FILE)
        if text is None:
            return {}
        data = json.loads(text)
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON (not UTF-8 text); {todo}") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg} at line {e.lineno}); {todo}") from e
    except OSError as e:
        raise CheckpointError(f"cannot read {path} ({e.strerror or e}); fix its permissions") from e
    version = data.get("version") if isinstance(data, dict) else None
    if isinstance(version, int) and version > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer msgtrace (version {version}); upgrade msgtrace, or {todo}"
        )
    try:
        if version not in (1, VERSION) or not isinstance(data["sources"], dict):
            raise ValueError("no sources")
        sources = {fp: SourceState(**entry) for fp, entry in data["sources"].items()}
        for s in sources.values():
            if not all(isinstance(v, int) for v in (s.offset, s.line, s.unknown, s.head_len, s.tail_len)):
                raise ValueError("offsets are not numbers")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path} does not hold checkpoints ({e}); {todo}") from e
    return sources


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
