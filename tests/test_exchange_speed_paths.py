"""The cheaper paths in the Exchange parser, pinned with the values the parser gave before them.

_orig() splits related-recipient-address into a list only for a rewrite of several recipients
(the one case that can pair by position); every other row takes the first address. The delay,
DSN and detail of recipient rows are worked out on outcome rows only.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from msgtrace.ingest.formats import exchange
from msgtrace.ingest.formats.context import ParseContext

FIELDS = (
    "#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,"
    "total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,"
    "return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data"
)


def line(event: str, rcpt: str, status: str = "", related: str = "", info: str = "") -> str:
    return (
        f"2026-06-14T09:00:10.500Z,,,10.0.0.9,EX02,,,ROUTING,{event},77,<m@x>,nid-1,{rcpt},{status},"
        f"1000,1,{related},,Hello,s@x.org,s@x.org,{info},Incoming,,,,"
    )


def parse(lines: list[str]) -> pl.DataFrame:
    df = pl.DataFrame({"line_no": range(len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String})
    return exchange.parse(df, ParseContext(source="t")).events


def test_orig_pairs_several_rewrites_by_position_and_else_takes_the_first() -> None:
    ev = parse(
        [
            FIELDS,
            line("RESOLVE", "a@x;b@x", related="alias-a@x;alias-b@x"),  # several, counts match: by position
            line("RESOLVE", "c@x;d@x", related="alias-c@x;x@x;y@x"),  # several, counts differ: the first
            line("RESOLVE", "e@x", related=" Alias-E@x ;z@x"),  # one recipient: the first, stripped
            line("RESOLVE", "F@x", related="f@X"),  # resolved to itself (case only): no orig
            line("EXPAND", "m1@x;m2@x", related="group@x"),  # members: the group
            line("DELIVER", "g@x", "250 2.1.5 ok", related="h@x"),  # an outcome: never an orig
        ]
    )
    got = ev.filter(pl.col("status") == "GettingStatus").select("line_no", "recipient", "orig_recipient").rows()
    assert got == [  # in line order, a split line's recipients in its order
        (1, "a@x", "alias-a@x"),
        (1, "b@x", "alias-b@x"),
        (2, "c@x", "alias-c@x"),
        (2, "d@x", "alias-c@x"),
        (3, "e@x", "Alias-E@x"),
        (4, "F@x", None),
        (5, "m1@x", "group@x"),
        (5, "m2@x", "group@x"),
    ]
    assert ev.filter(pl.col("line_no") == 6).select("recipient", "status", "orig_recipient").rows() == [
        ("g@x", "Delivered", None)
    ]


def test_delay_dsn_and_detail_on_outcome_rows_only() -> None:
    ev = parse(
        [
            FIELDS,
            line("DEFER", "a@x", "451 4.4.0 later", info="2026-06-14T09:00:00.250Z"),
            line("RESOLVE", "b@x", "451 4.4.0 later", related="c@x", info="2026-06-14T09:00:00.250Z"),
            line("DELIVER", "d@x", "250 2.1.5 ok", info="2026-06-14T09:01:00.000Z"),  # origin after: no delay
            line("FAIL", "e@x", "550 5.7.1 spam", info="bad"),
        ]
    )
    got = ev.filter(pl.col("kind") == "deliver").select("line_no", "status", "delay", "dsn", "detail").rows()
    assert got == [
        (1, "Pending", 10.25, "4.4.0", "451 4.4.0 later"),
        (2, "GettingStatus", None, None, None),
        (2, "None", None, None, "resolved to b@x"),  # a line's rewrite after its recipients
        (3, "Delivered", None, "2.1.5", "250 2.1.5 ok"),
        (4, "FilteredAsSpam", None, "5.7.1", "550 5.7.1 spam"),
    ]
    assert ev.get_column("time").unique().to_list() == [dt.datetime(2026, 6, 14, 9, 0, 10, 500000, tzinfo=dt.UTC)]
