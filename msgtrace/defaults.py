"""Defaults shared by several commands and modules, each defined once (no Polars import: the CLI
reads them for --help)."""

from __future__ import annotations

# Where the store is when neither --store nor $MSGTRACE_STORE names one.
STORE = "data/store"
STORE_ENV = "MSGTRACE_STORE"

# A trace refuses a start date older than this many days before now (0 lifts the limit).
MAX_AGE_DAYS = 10
