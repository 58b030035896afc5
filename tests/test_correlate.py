"""The correlator on hand-built events: message instances, content-filter chains, statuses,
completeness, and that the result depends only on the set of events, never on their order."""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from msgtrace.ingest.correlate import correlate
from msgtrace.ingest.schema import EVENT_SCHEMA, MESSAGE_SCHEMA, STATUSES, conform

T0 = dt.datetime(2026, 6, 13, 10, 0, tzinfo=dt.UTC)


class Log:
    """Events of one source, one line each, times in seconds after T0."""

    def __init__(self, source: str = "src", host: str = "mx1.example.org") -> None:
        self.rows: list[dict] = []
        self.source, self.host = source, host

    def __call__(self, sec: float, kind: str, qid: str | None, **fields: object) -> Log:
        self.rows.append(
            {
                "time": T0 + dt.timedelta(seconds=sec),
                "host": self.host,
                "organization": "example.org",
                "format": "postfix",
                "program": "postfix/x",
                "queue_id": qid,
                "kind": kind,
                "source": self.source,
                "line_no": len(self.rows),
                **fields,
            }
        )
        return self

    def frame(self) -> pl.DataFrame:
        return conform(pl.DataFrame(self.rows, schema_overrides={"time": EVENT_SCHEMA["time"]}), EVENT_SCHEMA)


def summary(rows: pl.DataFrame) -> list[tuple]:
    return rows.select("queue_ids", "recipient_address", "status", "incomplete").rows()


def delivered(log: Log, sec: float, qid: str, to: str, status: str = "Delivered", **f: object) -> Log:
    return log(sec, "deliver", qid, recipient=to, status=status, **f)


def simple(log: Log, qid: str, start: float, to: str = "bob@example.org") -> Log:
    log(start, "client", qid, client_ip="192.0.2.1")
    log(start, "receive", qid, sender="alice@example.com", size=100, nrcpt=1)
    delivered(log, start + 1, qid, to)
    return log(start + 1, "removed", qid)


def test_rows_follow_the_schema_and_statuses() -> None:
    rows = correlate(simple(Log(), "A1", 0).frame())
    assert rows.schema == pl.Schema(MESSAGE_SCHEMA)
    assert set(rows.get_column("status")) <= set(STATUSES)
    row = rows.row(0, named=True)
    assert (row["received"], row["sender_address"], row["from_ip"], row["size"]) == (
        T0,
        "alice@example.com",
        "192.0.2.1",
        100,
    )


def test_order_of_events_does_not_matter() -> None:
    log = Log()
    simple(log, "A1", 0)
    log(5, "client", "B2", client_ip="192.0.2.2")
    log(5, "receive", "B2", sender="carol@example.com", size=200, nrcpt=2)
    delivered(log, 6, "B2", "dave@example.org", "Pending")
    delivered(log, 6, "B2", "erin@example.org")
    delivered(log, 600, "B2", "dave@example.org")
    log(600, "removed", "B2")
    log(7, "reject", None, sender="x@example.net", recipient="frank@example.org", status="FilteredAsSpam")
    events = log.frame()
    expected = correlate(events)
    for seed in range(5):
        shuffled = events.sample(fraction=1.0, shuffle=True, seed=seed)
        assert correlate(shuffled).equals(expected)
    assert summary(expected) == [
        ("A1", "bob@example.org", "Delivered", False),
        ("B2", "dave@example.org", "Delivered", False),
        ("B2", "erin@example.org", "Delivered", False),
        ("", "frank@example.org", "FilteredAsSpam", False),
    ]


def test_queue_id_reuse_after_removed_and_after_silence() -> None:
    log = Log()
    simple(log, "A1", 0)
    simple(log, "A1", 60, "carol@example.org")  # reused after removed
    log(120, "client", "B2")
    delivered(log, 121, "B2", "dave@example.org")
    log(121 + 7 * 86400, "client", "B2")  # a week of silence, no removed seen: a new message
    rows = correlate(log.frame())
    assert summary(rows) == [
        ("A1", "bob@example.org", "Delivered", False),
        ("A1", "carol@example.org", "Delivered", False),
        ("B2", "dave@example.org", "Delivered", True),
        ("B2", "", "GettingStatus", True),
    ]
    assert rows.get_column("message_trace_id").n_unique() == 4


def test_removed_then_lines_in_the_same_second_are_one_message() -> None:
    # two files' lines of one second have no known order: do not split the message there
    log = Log()
    log(0, "removed", "A1")
    log(0, "client", "A1", client_ip="192.0.2.1")
    log(0, "receive", "A1", sender="a@example.com", size=1, nrcpt=1)
    delivered(log, 0, "A1", "b@example.org")
    assert summary(correlate(log.frame())) == [("A1", "b@example.org", "Delivered", False)]


def test_content_filter_chain_is_one_message_with_the_first_hop_fields() -> None:
    log = Log()
    log(0, "client", "P1", client_ip="198.51.100.20")
    log(0, "receive", "P1", sender="dave@example.net", size=1000, nrcpt=1)
    log(0, "subject", "P1", subject="Report")
    log(2, "client", "C1", client_ip="127.0.0.1")  # re-injection, logged before the hand-off line
    log(2, "receive", "C1", sender="dave@example.net", size=1500, nrcpt=1)
    log(2, "handoff", "P1", recipient="erin@example.org", status="Pending", next_queue_id="C1", to_ip="127.0.0.1")
    log(2, "removed", "P1")
    delivered(log, 3, "C1", "erin@example.org", relay="mail.example.org")
    log(3, "removed", "C1")
    rows = correlate(log.frame())
    assert rows.select("queue_id", "queue_ids", "from_ip", "size", "subject", "status", "relay").rows() == [
        ("P1", "P1 C1", "198.51.100.20", 1000, "Report", "Delivered", "mail.example.org")
    ]


def test_hand_off_without_its_continuation_is_pending_and_open() -> None:
    log = Log()
    simple(log, "A1", 0)
    log(10, "client", "P1")
    log(10, "receive", "P1", sender="a@example.com", size=1, nrcpt=1)
    log(11, "handoff", "P1", recipient="b@example.org", status="Pending", next_queue_id="C9", to_ip="127.0.0.1")
    log(11, "removed", "P1")
    # a queue id far from the hand-off is not its continuation
    simple(log, "C9", 2 * 3600)
    assert summary(correlate(log.frame())) == [
        ("A1", "bob@example.org", "Delivered", False),
        ("P1", "b@example.org", "Pending", True),
        ("C9", "bob@example.org", "Delivered", False),
    ]


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (["Pending", "Delivered"], "Delivered"),
        (["Pending", "Failed"], "Failed"),
        (["Pending", "Pending"], "Pending"),
        (["Delivered"], "Delivered"),
    ],
)
def test_the_latest_outcome_wins(outcomes: list[str], expected: str) -> None:
    log = Log()
    log(0, "client", "A1")
    for i, s in enumerate(outcomes):
        delivered(log, 1 + 600 * i, "A1", "Bob@Example.org", s)
    rows = correlate(log.frame())
    assert rows.select("recipient_address", "status").rows() == [("Bob@Example.org", expected)]


def test_aliases_expanded_and_redirected() -> None:
    log = Log()
    log(0, "client", "A1")
    log(0, "receive", "A1", sender="a@example.com", size=1, nrcpt=2)
    delivered(log, 1, "A1", "nina@example.org", orig_recipient="staff@example.org")
    delivered(log, 1, "A1", "oscar@example.org", orig_recipient="Staff@example.org")
    delivered(log, 1, "A1", "peggy@example.org", orig_recipient="postmaster@example.org")
    log(1, "removed", "A1")
    rows = correlate(log.frame())
    assert rows.select("recipient_address", "status", "detail").rows() == [
        ("nina@example.org", "Delivered", None),
        ("oscar@example.org", "Delivered", None),
        ("peggy@example.org", "Delivered", None),
        ("postmaster@example.org", "None", "redirected to peggy@example.org"),
        ("staff@example.org", "Expanded", "expanded to 2 recipients"),
    ]


def test_holds_decide_the_recipients_they_catch() -> None:
    log = Log()
    # amavis quarantines, then tells Postfix 250: the quarantine wins over the "sent" just after
    log(0, "client", "Q1")
    log(0, "receive", "Q1", sender="a@example.com", size=1, nrcpt=1)
    log(2, "hold", "Q1", status="Quarantined", detail="Blocked SPAM")
    delivered(log, 2, "Q1", "b@example.org")
    log(2, "removed", "Q1")
    # held, released an hour later and delivered: Delivered
    log(10, "client", "H1")
    log(10, "hold", "H1", status="Quarantined", sender="c@example.com", recipient="d@example.org")
    log(3600, "receive", "H1", sender="c@example.com", size=1, nrcpt=1)
    delivered(log, 3601, "H1", "d@example.org")
    log(3601, "removed", "H1")
    # deferred, then expired: Failed
    log(20, "client", "E1")
    log(20, "receive", "E1", sender="e@example.com", size=1, nrcpt=1)
    delivered(log, 21, "E1", "f@example.org", "Pending")
    log(5 * 86400, "hold", "E1", status="Failed", detail="status=expired")
    log(5 * 86400, "removed", "E1")
    assert summary(correlate(log.frame())) == [
        ("Q1", "b@example.org", "Quarantined", False),
        ("H1", "d@example.org", "Delivered", False),
        ("E1", "f@example.org", "Failed", False),
    ]


def test_held_without_removed_stays_open() -> None:
    log = Log()
    log(0, "client", "H1")
    log(0, "receive", "H1", sender="c@example.com", size=1, nrcpt=1)
    log(0, "hold", "H1", status="Quarantined", sender="c@example.com", recipient="d@example.org")
    assert summary(correlate(log.frame())) == [("H1", "d@example.org", "Quarantined", True)]


def test_completeness() -> None:
    log = Log()
    delivered(log, 0, "S1", "a@example.org")  # start outside the input
    log(0, "removed", "S1")
    log(1, "client", "N1")  # nothing after the receive: no recipient yet
    log(1, "receive", "N1", sender="x@example.com", size=1, nrcpt=1)
    log(2, "client", "R1")  # one of two recipients done, no removed
    log(2, "receive", "R1", sender="x@example.com", size=1, nrcpt=2)
    delivered(log, 3, "R1", "b@example.org")
    log(4, "client", "D1")  # all done, removed not logged (yet)
    log(4, "receive", "D1", sender="x@example.com", size=1, nrcpt=1)
    delivered(log, 5, "D1", "c@example.org")
    assert summary(correlate(log.frame())) == [
        ("S1", "a@example.org", "Delivered", True),
        ("N1", "", "GettingStatus", True),
        ("R1", "b@example.org", "Delivered", True),
        ("D1", "c@example.org", "Delivered", False),
    ]


def test_lines_we_could_not_interpret_make_no_message() -> None:
    log = Log()
    log(0, "info", "ABCDEF12345", detail="a plugin's output")
    simple(log, "A1", 1)
    log(2, "info", "A1", detail="enabling PIX workarounds")
    assert summary(correlate(log.frame())) == [("A1", "bob@example.org", "Delivered", False)]


def test_sender_prefers_the_rewritten_address() -> None:
    log = Log()
    log(0, "receive", "L1", sender="root")  # pickup: as typed
    log(0, "receive", "L1", sender="root@mx1.example.org", size=1, nrcpt=1)  # qmgr: after cleanup
    log(1, "client", "M1")
    log(1, "reject", "M1", sender="promo@example.com", recipient="x@example.org", status="FilteredAsSpam")
    rows = correlate(log.frame())
    assert rows.select("queue_id", "sender_address").rows() == [
        ("L1", "root@mx1.example.org"),
        ("M1", "promo@example.com"),
    ]


def test_trace_ids_are_stable_and_start_with_received() -> None:
    events = simple(Log(), "A1", 0).frame()
    a = correlate(events).get_column("message_trace_id").item()
    b = correlate(events.reverse()).get_column("message_trace_id").item()
    assert a == b
    assert int(a.replace("-", "")[:12], 16) == int(T0.timestamp() * 1000)
    assert a[14] == "7"  # UUIDv7 layout
    other_host = Log(host="mx2.example.org")
    c = correlate(simple(other_host, "A1", 0).frame()).get_column("message_trace_id").item()
    assert c != a


def test_many_messages_shuffled() -> None:
    log = Log()
    rng = random.Random(3)
    for i in range(300):
        qid = f"{i:05X}"
        start = rng.randrange(0, 86400)
        log(start, "client", qid, client_ip=f"192.0.2.{i % 250}")
        log(start, "receive", qid, sender=f"s{i}@example.com", size=i, nrcpt=1)
        delivered(log, start + 1, qid, f"r{i}@example.org", rng.choice(["Delivered", "Pending", "Failed"]))
    events = log.frame()
    rows = correlate(events)
    assert rows.height == 300
    assert correlate(events.sample(fraction=1.0, shuffle=True, seed=1)).equals(rows)
