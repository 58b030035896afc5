"""Defaults shared by several commands and modules, each defined once (no Polars import: the CLI
reads them for --help)."""

from __future__ import annotations

import datetime as dt

# Where the store is when neither --store nor $MSGTRACE_STORE names one.
STORE = "data/store"
STORE_ENV = "MSGTRACE_STORE"
# The name of the writer an ingest, watch or compact is when --writer is not given (else the host name).
WRITER_ENV = "MSGTRACE_WRITER"

# A trace refuses a start date older than this many days before now (0 lifts the limit).
MAX_AGE_DAYS = 10

# Postfix maximal_queue_lifetime: days a message may wait in the queue for its outcome.
MAX_QUEUE_LIFETIME_DAYS = 5.0


def queue_lifetime(max_queue_lifetime_days: float = MAX_QUEUE_LIFETIME_DAYS) -> dt.timedelta:
    """How far apart the events of one message may lie: the queue lifetime plus one day of slack
    (clocks and log timestamps drift). Open state older than this expires, the correlator starts a
    new message after a longer silence, and `detail` looks this far after Received."""
    return dt.timedelta(days=max_queue_lifetime_days + 1)


QUEUE_LIFETIME = queue_lifetime()  # 6 days

# A partition is merged into one file once it has this many current files (the watcher's
# --compact-files; a batch ingest after it ran).
COMPACT_MIN_FILES = 8

# Ingest tuning (ingest.pipeline.IngestOptions): events per flush bounds peak memory, a flush's
# working set being some 10 times its events' size (10 M Postfix lines: 0.83 GB peak; 100k
# events a flush would save ~0.1 GB for 36% more CPU); lines are read in chunks of about this many bytes.
FLUSH_EVENTS = 200_000
CHUNK_BYTES = 8 * 1024 * 1024
# `msgtrace web --cache-mb`: memory for the decoded trace columns of recently searched days
# (msgtrace.store.cache). A day of the bench's 364,000 message rows takes ~90 MB, so 512 MB holds
# the three partitions of the 48-hour default search on such a busy server, and months of a small one.
WEB_CACHE_MB = 512
