"""Which store: the one rule the CLI and the library share (no Polars import).

A store is a local directory or an object-store prefix (`s3://bucket/prefix`). Both are
`PurePath`s: a local one is a `Path`, an object-store one an `ObjectPath`, so the store's code
joins, names and compares locations the same way for both, and only its file system
(msgtrace.store.fs, msgtrace.store.s3) knows which is which.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePath, PurePosixPath

from msgtrace.defaults import STORE, STORE_ENV
from msgtrace.errors import QueryError

StoreLike = str | os.PathLike[str] | None
SCHEME = "s3://"
# S3's bucket naming rules (lower case, digits, dots, hyphens; 3 to 63)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ObjectPath(PurePosixPath):
    """A location in an S3 bucket, `s3://bucket/key`: joined and named like a path, never opened
    as a local file (os.fspath refuses it, so a stray open() fails instead of writing `s3:/...`)."""

    def __str__(self) -> str:
        return SCHEME + "/".join(self.parts[1:])

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __fspath__(self) -> str:
        raise TypeError(f"{self} is an object-store location, not a local path")

    @property
    def bucket(self) -> str:
        """The bucket's name."""
        return self.parts[1]

    @property
    def key(self) -> str:
        """The object key (or key prefix) inside the bucket, without a leading slash."""
        return "/".join(self.parts[2:])


StoreRoot = Path | ObjectPath


def is_object_store(text: str) -> bool:
    """Whether a --store value names an object-store location."""
    return text.startswith(SCHEME)


def object_path(text: str) -> ObjectPath:
    """`s3://bucket/prefix` as an ObjectPath; a malformed one is an error naming --store."""
    rest = text[len(SCHEME) :].strip("/")
    bucket = rest.split("/", 1)[0]
    if not _BUCKET.match(bucket) or "//" in rest:
        raise QueryError.naming(
            "{store} {url!r}: not an S3 location; give s3://BUCKET/PREFIX (a bucket name of 3 to 63 "
            "lower-case letters, digits, dots and hyphens)",
            url=text,
        )
    return ObjectPath(SCHEME + rest)


def store_path(store: StoreLike) -> StoreRoot:
    """The store: the argument, else $MSGTRACE_STORE, else data/store (it may not exist yet:
    ingest and watch create it). An empty argument is an error, not the current directory."""
    if isinstance(store, ObjectPath):
        return store
    text = os.fspath(store) if store is not None else os.environ.get(STORE_ENV) or STORE
    if not str(text).strip():
        raise QueryError.naming("{store} is empty: pass {store=DIR} (a msgtrace store) or set {env}", env=STORE_ENV)
    return object_path(str(text)) if is_object_store(str(text)) else Path(text)


def existing_store(store: StoreLike) -> StoreRoot:
    """store_path, which must be an existing directory (the commands and calls that read a store).
    An object-store prefix is not checked here: whether it holds a store is a listing
    (msgtrace.store.Store.is_store), which the readers do next."""
    path = store_path(store)
    if isinstance(path, ObjectPath):
        return path
    if not path.exists():
        raise QueryError.naming(
            "store {path!r} does not exist: pass {store=DIR} or set {env}", path=str(path), env=STORE_ENV
        )
    if not path.is_dir():
        raise QueryError.naming(
            "store {path!r} is a file, not a directory: pass {store=DIR} (a msgtrace store)", path=str(path)
        )
    return path


def location(text: str) -> StoreRoot:
    """A store file's location from its text (as reports and messages give it)."""
    return object_path(text) if is_object_store(text) else Path(text)


def is_local(root: PurePath) -> bool:
    """Whether a store location is a local directory."""
    return not isinstance(root, ObjectPath)
