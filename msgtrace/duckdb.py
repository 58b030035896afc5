"""The store's message rows as a DuckDB view: each message once, as `msgtrace trace` sees them.

    import msgtrace.duckdb
    con = msgtrace.duckdb.connect("data/store")          # a DuckDB connection with the view `messages`
    con.sql("SELECT status, count(*) FROM messages WHERE date >= DATE '2026-06-01' GROUP BY ALL")

or, for the duckdb shell (or any DuckDB client): `python -m msgtrace.duckdb --store data/store > view.sql`.

The view is SQL alone (msgtrace.store writes it: the file protocol stays there): it lists the
partitions each time it is read, keeps the current files and drops superseded rows, so it
follows the watcher's new files and compactions without being created again. Its columns are
the stored ones (MESSAGE_SCHEMA, snake case) plus `date`, the UTC day of `received`: a filter on
`date` opens only those days' files, as msgtrace does for a window.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING

from msgtrace.api import StoreLike

if TYPE_CHECKING:
    import duckdb

__all__ = ["connect", "view_sql"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def view_sql(store: StoreLike = None, name: str = "messages") -> str:
    """The `CREATE OR REPLACE VIEW name AS ...` statement over the store's message rows (absolute
    paths). `store`: the store directory, else $MSGTRACE_STORE, else data/store."""
    from msgtrace.errors import QueryError
    from msgtrace.query.engine import resolve_store
    from msgtrace.store import Store

    if not _NAME.match(name):
        raise QueryError(f"invalid view name {name!r}: use letters, digits and _ (a SQL identifier)")
    return Store(resolve_store(store).resolve()).messages.sql_view(name)


def connect(store: StoreLike = None, name: str = "messages", database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (to `database`) with the view created in it (needs `pip install duckdb`)."""
    import duckdb

    con = duckdb.connect(database)
    con.execute(view_sql(store, name))
    return con


def main(argv: list[str] | None = None) -> int:
    """`python -m msgtrace.duckdb [--store DIR] [--name VIEW]`: print the view's SQL."""
    from msgtrace.errors import MsgtraceError

    parser = argparse.ArgumentParser(prog="python -m msgtrace.duckdb", description="Print the DuckDB view's SQL.")
    parser.add_argument("--store", default=None, help="store directory [env MSGTRACE_STORE; default data/store]")
    parser.add_argument("--name", default="messages", help="the view's name [default messages]")
    args = parser.parse_args(argv)
    try:
        print(view_sql(args.store, args.name), end="")
    except MsgtraceError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
