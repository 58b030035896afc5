"""Which directory is the store: the one rule the CLI and the library share (no Polars import)."""

from __future__ import annotations

import os
from pathlib import Path

from msgtrace.defaults import STORE, STORE_ENV
from msgtrace.errors import QueryError

StoreLike = str | os.PathLike[str] | None


def store_path(store: StoreLike) -> Path:
    """The store directory: the argument, else $MSGTRACE_STORE, else data/store (it may not exist
    yet: ingest and watch create it). An empty argument is an error, not the current directory."""
    text = os.fspath(store) if store is not None else os.environ.get(STORE_ENV) or STORE
    if not str(text).strip():
        raise QueryError.naming("{store} is empty: pass {store=DIR} (a msgtrace store) or set {env}", env=STORE_ENV)
    return Path(text)


def existing_store(store: StoreLike) -> Path:
    """store_path, which must be an existing directory (the commands and calls that read a store)."""
    path = store_path(store)
    if not path.exists():
        raise QueryError.naming(
            "store {path!r} does not exist: pass {store=DIR} or set {env}", path=str(path), env=STORE_ENV
        )
    if not path.is_dir():
        raise QueryError.naming(
            "store {path!r} is a file, not a directory: pass {store=DIR} (a msgtrace store)", path=str(path)
        )
    return path
