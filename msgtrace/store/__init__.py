"""The store: two hive-partitioned Parquet tables (messages, events) and their state files.

    from msgtrace.store import Store
    store = Store(Path("data/store"))
    lf = store.messages.scan([day])          # current rows, superseded ones dropped
    store.events.append(frame)               # one new file per UTC day (the caller holds the lease)
    Store(Path("s3://bucket/prefix"))        # no: an s3 store is storepath.store_path("s3://...")
    Store(root, writer="mx2")                # a named writer: its own files and state (WriterLease)

`Store` / `Table` (msgtrace.store.table) are the only way in: the file protocol below them
(msgtrace.store.files: generations, deletes and counts in footers) and the file system
(msgtrace.store.fs) are theirs alone (tests/test_store_boundary.py checks every module's imports).
"""

from msgtrace.store.cache import ColumnCache, reading_through
from msgtrace.store.lock import LEASE_ENV, StoreLock, WriterLease, lock_holder, writer_holder
from msgtrace.store.table import (
    DAMAGED_DIR,
    STATE_DIR,
    EventsTable,
    MessagesTable,
    StateFiles,
    Store,
    StoreError,
    Table,
    days_between,
)

__all__ = [
    "ColumnCache",
    "DAMAGED_DIR",
    "LEASE_ENV",
    "STATE_DIR",
    "EventsTable",
    "MessagesTable",
    "StateFiles",
    "Store",
    "StoreError",
    "StoreLock",
    "Table",
    "days_between",
    "WriterLease",
    "lock_holder",
    "reading_through",
    "writer_holder",
]
