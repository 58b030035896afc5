"""The compiled Postfix parser (msgtrace._core, on the production path) against the vectorised
Polars parser it replaced (tests/polars_postfix.py, kept as the reference): the same events,
unknown lines and carried state on every golden fixture, every Postfix file of the shared
corpus, generated logs over seeds and zones, and random and mutated lines (the fuzz test, which
also holds the extension to its promise: a malformed line is an unknown line, never a crash).

Each log is also cut into batches at a few places, so what one batch carries to the next
(the year's rollovers, the latest wall time for the DST fall-back hour, open smtpd sessions)
is compared too.
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import tarfile
import time
from pathlib import Path

import polars as pl
import pytest

from msgtrace.generate import generate
from msgtrace.ingest.formats import postfix
from msgtrace.ingest.formats.context import ParseContext
from tests import helpers_compiled, polars_postfix
from tests.conftest import CORPUS
from tests.helpers_compiled import frame, read, thirds

FIXTURES = Path(__file__).parent / "fixtures" / "postfix"
PF = CORPUS / "postfix"


def assert_same(lines: list[str], cuts: list[int] = (), **context: object) -> pl.DataFrame:
    """Both parsers over `lines` in batches cut at `cuts`, with ParseContext(**context)."""
    return helpers_compiled.assert_same(postfix, polars_postfix, lines, cuts, **context)[0]


def _fixture_logs() -> list[Path]:
    return sorted(FIXTURES.rglob("*.log"))


@pytest.mark.parametrize("log", _fixture_logs(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_golden_fixture(log: Path) -> None:
    lines = read(log)
    assert_same(lines, year=2026)
    assert_same(lines, thirds(len(lines)), year=2026, timezone="Europe/Vienna")


def _corpus_files() -> list[str]:
    if not PF.exists():
        return ["absent"]
    plain = [
        str(p.relative_to(PF)) for p in sorted(PF.rglob("*")) if p.is_file() and not p.name.endswith((".gz", ".tsv"))
    ]
    with tarfile.open(PF / "lightmeter" / "individual_files.tar.gz") as tar:
        members = sorted(m.name for m in tar.getmembers() if m.isfile())
    return plain + [f"lightmeter:{m}" for m in members]


def _corpus_lines(name: str) -> list[str]:
    if name.startswith("lightmeter:"):
        with tarfile.open(PF / "lightmeter" / "individual_files.tar.gz") as tar:
            data = tar.extractfile(name.split(":", 1)[1]).read()  # type: ignore[union-attr]
        return data.decode("utf-8", errors="replace").splitlines()
    return read(PF / name)


@pytest.mark.slow
@pytest.mark.parametrize("name", _corpus_files())
def test_corpus_file(corpus: Path, name: str) -> None:
    lines = _corpus_lines(name)
    assert_same(lines, thirds(len(lines)), year=2020)
    assert_same(lines, timezone="America/New_York", year=2020)
    # no year given: inferred from the reference time (the file's mtime)
    assert_same(lines, reference=dt.datetime(2020, 3, 1, tzinfo=dt.UTC))


def test_grok_payloads_with_a_header(corpus: Path) -> None:
    import csv

    with (PF / "postfix-grok-patterns" / "payloads.tsv").open(newline="", encoding="utf-8") as f:
        rows = [(r["file"], r["payload"]) for r in csv.DictReader(f, delimiter="\t")]
    lines = [f"Oct 26 18:13:50 mx1 postfix/{name.rsplit('_', 1)[0]}[123]: {payload}" for name, payload in rows]
    assert_same(lines, year=2026)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_logs(tmp_path: Path, seed: int) -> None:
    log = tmp_path / "pf.log"
    generate("postfix", log, lines=6000, start="2026-03-28", days=3, tz="Europe/Vienna", seed=seed)
    lines = read(log)
    assert_same(lines, thirds(len(lines)), year=2026, timezone="Europe/Vienna")
    assert_same(lines, year=2026)


def test_year_rollover_dst_and_iso_stamps() -> None:
    lines = [
        "Dec 31 23:59:58 mx1 postfix/qmgr[1]: 3F1A22C01: removed",
        "Jan  1 00:00:01 mx1 postfix/qmgr[1]: 3F1A22C02: removed",
        "Dec 31 23:59:59 mx1 postfix/qmgr[1]: 3F1A22C03: removed",  # late line of the old year
        "Jan  1 00:00:02 mx1 postfix/qmgr[1]: 3F1A22C04: removed",
        "Oct 25 02:30:00 mx1 postfix/qmgr[1]: 3F1A22C05: removed",  # a gap in the log: same year
        "Oct 25 02:50:00 mx1 postfix/qmgr[1]: 3F1A22C06: removed",
        "Oct 25 02:20:00 mx1 postfix/qmgr[1]: 3F1A22C07: removed",  # the repeated hour's second pass
        "Mar 29 02:30:00 mx1 postfix/qmgr[1]: 3F1A22C08: removed",  # the skipped hour
        "2026-06-13T10:00:00.123456+02:00 mx1 postfix/qmgr[1]: 3F1A22C09: removed",
        "2026-06-13T10:00:00Z mx1 postfix/qmgr[1]: 3F1A22C0A: removed",
        "2026-06-13 10:00:00.5 mx1 postfix/qmgr[1]: 3F1A22C0B: removed",  # no offset: the zone's
        "<22>1 2026-06-13T10:00:00+0200 mx1 postfix/qmgr[1]: 3F1A22C0C: removed",
        "Feb 29 10:00:00 mx1 postfix/qmgr[1]: 3F1A22C0D: removed",  # not in 2027: not syslog
        "Jun 13 10:59:60 mx1 postfix/qmgr[1]: 3F1A22C0E: removed",  # a leap second
        "Jun  3 10:00:00.250 mx1 postfix/qmgr[1]: 3F1A22C0F: removed",
        "Foo 13 10:00:00 mx1 postfix/qmgr[1]: 3F1A22C10: removed",
    ]
    for zone in ("UTC", "Europe/Vienna"):
        for cuts in ([], [1], [2, 3], [6, 7]):
            assert_same(lines, cuts, year=2026, timezone=zone)
        assert_same(lines, reference=dt.datetime(2026, 6, 13, tzinfo=dt.UTC), timezone=zone)


# ---- fuzz ---------------------------------------------------------------------------------------

_SHAPES = [
    "Jun 13 10:00:00 mx1 postfix/smtpd[901]: 3F1A22C01: client=mail.example.com[192.0.2.1], orig_client=h[10.0.0.1]",
    "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: message-id=<abc@example.com> ",
    "Jun 13 10:00:00 mx1 postfix/qmgr[903]: 3F1A22C01: from=<alice@example.com>, size=1234, nrcpt=2 (queue active)",
    "Jun 13 10:00:00 mx1 postfix/qmgr[903]: 3F1A22C01: from=<alice@example.com>, status=expired, returned to sender",
    "Jun 13 10:00:00 mx1 postfix/smtp[904]: 3F1A22C01: to=<bob@example.org>, orig_to=<b@example.org>, relay=mx.example.org[203.0.113.7]:25, conn_use=2, delay=1.2, delays=0.1/0/0.5/0.6, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 4B2C33D02)",
    "Jun 13 10:00:00 mx1 postfix/smtp[904]: 3F1A22C01: to=<bob@example.org>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.2, delays=0.1/0/0/0.1, dsn=2.0.0, status=sent (250 2.0.0 Ok, id=1, from MTA([127.0.0.1]:10025): 250 2.0.0 Ok: queued as 4B2C33D02)",
    "Jun 13 10:00:00 mx1 postfix/local[905]: 3F1A22C01: to=<root@mx1>, orig_to=<root>, relay=local, delay=0.01, delays=0/0/0/0, dsn=2.0.0, status=sent (forwarded as 5C3D44E03)",
    "Jun 13 10:00:00 mx1 postfix-10.0.0.5/smtp[904]: 3F1A22C01: to=<b@x>, relay=10.0.0.5[10.0.0.5]:2501, delay=1, delays=0/0/0/1, dsn=2.0.0, status=sent (250 queued as 6D4E55F04)",
    "Jun 13 10:00:00 mx1 postfix/smtp[904]: 3F1A22C01: to=<bob@example.org>, relay=none, delay=3600, delays=3600/0/0/0, dsn=4.4.1, status=deferred (connect to x[1.2.3.4]:25: Connection timed out)",
    "Jun 13 10:00:00 mx1 postfix/smtp[904]: 3F1A22C01: to=<a,b@x>, relay=none, delay=1, delays=1/0/0/0, dsn=5.1.1, status=bounced (unknown user)",
    "Jun 13 10:00:00 mx1 postfix/qmgr[903]: 3F1A22C01: removed",
    "Jun 13 10:00:00 mx1 postfix/bounce[906]: 3F1A22C01: sender non-delivery notification: 4B2C33D02",
    "Jun 13 10:00:00 mx1 postfix/smtpd[901]: NOQUEUE: reject: RCPT from unknown[192.0.2.9]: 554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org; from=<spam@x.org> to=<b@y.org> proto=ESMTP helo=<x>",
    "Jun 13 10:00:00 mx1 postfix/postscreen[907]: NOQUEUE: reject: RCPT from [192.0.2.9]:4242: 550 5.7.1 Junk; from=<a@x>, to=<b@y>, proto=ESMTP, helo=<h>",
    "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: milter-reject: END-OF-MESSAGE from h[192.0.2.1]: 5.7.1 Spam; from=<a@x> to=<b@y> proto=ESMTP helo=<h>",
    "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: reject: header Subject: x from h[192.0.2.1]; from=<a@x> to=<b@y> proto=ESMTP helo=<h>: 5.7.1 text",
    "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: milter-hold: END-OF-MESSAGE from h[1.2.3.4]: 4.7.1 held; from=<a@x> to=<b@y> proto=ESMTP",
    "Jun 13 10:00:00 mx1 postfix/postsuper[908]: 3F1A22C01: placed on hold",
    "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: discard: header Subject: win from h[1.2.3.4]; from=<a@x> to=<b@y>",
    "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: warning: header Subject: Hello there from h[1.2.3.4]; from=<a@x> to=<b@y> proto=ESMTP",
    "Jun 13 10:00:00 mx1 postfix/pickup[909]: 3F1A22C01: uid=1000 from=<alice>",
    "Jun 13 10:00:00 mx1 postfix/smtpd[901]: disconnect from h[192.0.2.1] ehlo=1 mail=1 rcpt=1 quit=1 commands=4",
    "Jun 13 10:00:00 mx1 postfix/smtpd[901]: disconnect from h[192.0.2.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1",
    "Jun 13 10:00:00 mx1 postfix/smtpd[901]: connect from h[192.0.2.1]",
    'Jun 13 10:00:00 mx1 amavis[910]: (01-02) Blocked SPAM {DiscardedInbound,Quarantined}, [1.2.3.4]:5 <a@x> -> <b@y>, Queue-ID: 3F1A22C01, Message-ID: <m@x>, Subject: "Buy ""now"" (raw: =?utf-8?B?QnV5?=)", 12 ms',
    'Jun 13 10:00:00 mx1 amavis[910]: (2-11) Passed CLEAN {RelayedInbound}, [1.2.3.4]:5 <a@x> -> <b@y>, Message-ID: <7181@a>, queued_as: 4PbC4z6W5Qz3tG3, Subject: "Hi", 2131 ms',
    "2026-06-13T10:00:00.123+02:00 mx1 postfix/qmgr[903]: 3F1A22C01: removed",
    "<13>Jun 13 10:00:00 mx1: postfix/qmgr[9x0]: 4PbC4x469Jz3tBr: removed",
    "Jun 13 10:00:00 2001:db8::25 postfix/qmgr: statistics: max connection rate 1/60s",
]
_mutate = helpers_compiled.mutate


def test_fuzz_random_and_mutated_lines() -> None:
    """Bounded in time (a few seconds): mutations of every line shape and random bytes, through
    both parsers in batches; the extension must never fail and must agree with the reference."""
    rng = random.Random(16)
    deadline = time.monotonic() + 6
    rounds = 0
    while time.monotonic() < deadline:
        lines = [_mutate(rng, rng.choice(_SHAPES)) for _ in range(300)]
        lines += ["".join(chr(rng.randrange(1, 0x300)) for _ in range(rng.randrange(60))) for _ in range(20)]
        lines += [rng.choice(_SHAPES)[: rng.randrange(80)] for _ in range(20)]
        rng.shuffle(lines)
        assert_same(lines, thirds(len(lines)), year=2026, timezone=rng.choice(["UTC", "Europe/Vienna"]))
        rounds += 1
    assert rounds >= 1


def test_hand_readers_of_subjects_message_ids_and_verdicts() -> None:
    # the hand-written readers of _AMAVIS_SUBJECT, _AMAVIS_MSGID, the verdict, queued_as and the
    # header Subject warning, on the shapes where a regex backs off or looks further
    amavis = (
        "Jun 13 10:00:00 mx1 amavis[910]: (2-11) Passed CLEAN {RelayedInbound}, <a@x> -> <b@y>, Queue-ID: 3F1A22C01"
    )
    warning = "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: warning: header Subject: "
    lines = [
        amavis + ', Message-ID: <m@x>, Subject: "a ""b"" c"',  # doubled quotes inside
        amavis + ', Message-ID: <m@x>, Subject: "a ""b"" c',  # no closing quote: back to the last pair
        amavis + ', Message-ID: <m@x>, Subject: "no quote at all',
        amavis + ', Subject: "one", Subject: "two"',
        amavis + ', Subject: "x (raw: =?utf-8?B?eA==?=)"',
        amavis + ', Subject: "x (raw: y) z"',
        amavis + ", Message-ID: <a<b>, Message-ID: <c@d>",  # the first one is no match
        amavis + ", Message-ID: <never closed",
        amavis + ', Message-ID: <é@x>, Subject: "é ""ü"""',
        "Jun 13 10:00:00 mx1 amavis[910]: (2-11) Passed CLEAN {x}, Message-ID: <m@x>, queued_as: , queued_as: 4PbC4z6",
        "Jun 13 10:00:00 mx1 amavis[910]: (2-11)Passed CLEAN {x}, Queue-ID: 3F1A22C01, Message-ID: <m@x>",
        "Jun 13 10:00:00 mx1 amavis[910]: () Passed CLEAN {x}, Queue-ID: 3F1A22C01, Message-ID: <m@x>",
        "Jun 13 10:00:00 mx1 amavis[910]: (1-2) Blocked INFECTED {x}, Queue-ID: 3F1A22C01, Message-ID: <m@x>",
        "Jun 13 10:00:00 mx1 amavis[910]: (1-2) Blocked spam {x}, Queue-ID: 3F1A22C01, Message-ID: <m@x>",
        warning + "x from from h[1.2.3.4]; from=<a@x>",  # overlapping " from "
        warning + "x from y from h[1.2.3.4]; from=<a@x>",
        warning + "x from y z from local; from=<a@x>",
        warning + "x from ab[ from=<a@x>",
        warning + "x from  h[1.2.3.4]",
        warning + "no sender here",
        warning + "tab\tfrom h[1] from h[2]",
        "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: info: header Subject: cron from local; from=<root>",
        "Jun 13 10:00:00 mx1 postfix/cleanup[902]: 3F1A22C01: info: header Subject: é from h[1]; from=<root>",
    ]
    reject = "Jun 13 10:00:00 mx1 postfix/smtpd[901]: NOQUEUE: reject: "
    lines += [
        reject + "RCPT from u[192.0.2.9]: 554 5.7.1 x; from=<a@x>, to=<b@y>, proto=ESMTP, helo=<h>",
        reject + "RCPT from u[192.0.2.9]: 554 5.7.1 x; from=<a@x> to=<b@y> proto=esmtp helo=<h>",
        reject + "RCPT from u[192.0.2.9]: 554 5.7.1 x; from=<a@x> helo=<h> tail",
        reject + "RCPT from u[192.0.2.9]: 554 5.7.1 x; from=<a@x> proto=SMTP,",
        reject + "RCPT from u[192.0.2.9]: 554 5.7.1 x; from=<a@x to=<b@y>",
        reject + "RCPT from u[192.0.2.9]: 554 spam; from=<never closed",
        reject + "RCPT from u[192.0.2.9]: 554 x; from=<a> to=<b; from=<c> to=<d>",
        reject + "MAIL xfrom h[192.0.2.1]: 554 blocked; from=<a@x>",
        reject + "RCPT from from h[192.0.2.1]: 554 blocked; from=<a@x>",
        reject + "RCPT from h [192.0.2.1] from g[192.0.2.2]: 554 x; from=<a@x>",
        reject + "RCPT from h[192.0.2.1: 554 x from g[192.0.2.2]; from=<a@x>",
        reject + "RCPT from h,x[192.0.2.1]: 554 x; from=<a@x>",
        reject + "RCPT from é[192.0.2.1]: 554 x; from=<a@x>",
    ]
    for cuts in ([], [3], [7, 11]):
        assert_same(lines, cuts, year=2026)


def test_a_batch_with_a_slice_offset_and_state_copy() -> None:
    # a frame sliced from a larger one (the pipeline halves failing batches) hands Arrow offsets
    # that do not start at 0; and the state is plain data the checkpoint can copy
    lines = [s for s in _SHAPES]
    big = frame(["x"] * 5 + lines)
    ctx = ParseContext(year=2026)
    sliced = postfix.parse(big.slice(5), ctx)
    whole = postfix.parse(frame(lines).with_columns(pl.col("line_no") + 5), ParseContext(year=2026))
    assert sliced.events.equals(whole.events)
    assert copy.deepcopy(ctx.state) == ctx.state


def test_the_extension_names_input_it_cannotread() -> None:
    from msgtrace import _core

    line = b"Jun 13 10:00:00 mx1 postfix/qmgr[1]: 3F1A22C01: removed"

    def view(length: int, buffer: int = 0, offset: int = 0) -> bytes:  # an Arrow string view of a long text
        return length.to_bytes(4, "little") + line[:4] + buffer.to_bytes(4, "little") + offset.to_bytes(4, "little")

    one = (0).to_bytes(8, "little")
    assert _core.parse_postfix(view(len(line)), [line], one, {"year": 2026})["rows"] == 1
    with pytest.raises(ValueError, match="line 0: its view points outside the buffers"):
        _core.parse_postfix(view(len(line), offset=5), [line], one, {"year": 2026})  # past the end
    with pytest.raises(ValueError, match="line 0: its view points outside the buffers"):
        _core.parse_postfix(view(len(line), buffer=1), [line], one, {"year": 2026})  # no such buffer
    with pytest.raises(ValueError, match="or its text is not UTF-8"):
        _core.parse_postfix(view(len(line)), [line[:20] + b"\xc3" + line[21:]], one, {})  # half a character
    with pytest.raises(ValueError, match="16 bytes of views for 2 lines"):
        _core.parse_postfix(view(len(line)), [line], bytes(16), {"year": 2026})


def test_a_parser_failure_is_split_off_by_the_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # what the extension raises (ParserFailed) is handled as a Polars error is: the batch is
    # halved until the failing line is alone, and only that line is rejected
    from msgtrace.ingest.formats import ParserFailed
    from msgtrace.ingest.pipeline import IngestOptions, ingest_paths

    lines = [s for s in _SHAPES if "postfix/" in s and not s.startswith(("2026", "<13>"))]
    lines[3] = lines[3] + " BOOM"
    log = tmp_path / "m.log"
    log.write_text("\n".join(lines) + "\n")
    parse = postfix.parse

    def fails_on_boom(batch: pl.DataFrame, ctx: ParseContext) -> object:
        if batch.get_column("line").str.contains("BOOM").any():
            raise ParserFailed("the Postfix parser failed on line 3 (row 3 of the batch): boom")
        return parse(batch, ctx)

    monkeypatch.setattr(postfix, "parse", fails_on_boom)
    rep = ingest_paths([str(log)], tmp_path / "store", IngestOptions(timezone="UTC", year=2026, format="postfix"))
    assert rep.lines == len(lines)
    assert rep.files[0].failed == 1
