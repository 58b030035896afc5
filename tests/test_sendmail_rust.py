"""The compiled Sendmail parser (msgtrace._core.parse_sendmail, on the production path) against the
vectorised Polars parser it replaced (tests/polars_sendmail.py, kept as the reference): the same
events, unknown lines and carried state on every golden fixture, every file of the shared
corpus, generated logs over seeds and zones, and random and mutated lines (the fuzz test, which
also holds the extension to its promise: a malformed line is an unknown line, never a crash).

Each log is also cut into batches, at fixed and at random places, so what one batch carries to
the next (the year's rollovers, the latest wall time for the DST fall-back hour) is compared
too, and so is what depends on the batch (an address line is a reject when logged before its
queue id's first from= line of the batch).
"""

from __future__ import annotations

import copy
import datetime as dt
import random
import time
from pathlib import Path

import polars as pl
import pytest

from msgtrace.generate import generate
from msgtrace.ingest.formats import sendmail
from msgtrace.ingest.formats.context import ParseContext
from tests import polars_sendmail
from tests.conftest import CORPUS
from tests.helpers_compiled import assert_same, frame, mutate, random_cuts, read, thirds

FIXTURES = Path(__file__).parent / "fixtures"
SM = CORPUS / "sendmail"


def same(lines: list[str], at: list[int] = (), **context: object) -> tuple[pl.DataFrame, pl.DataFrame]:
    return assert_same(sendmail, polars_sendmail, lines, list(at), **context)


def _fixture_logs() -> list[Path]:
    """Every fixture log the Sendmail detector claims, wherever it lives under tests/fixtures."""
    return sorted(p for p in FIXTURES.rglob("*.log") if sendmail.detect(read(p)[:50]))


@pytest.mark.parametrize("log", _fixture_logs(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_golden_fixture(log: Path) -> None:
    lines = read(log)
    same(lines, year=2026)
    same(lines, thirds(len(lines)), year=2026, timezone="Europe/Paris")
    same(lines, reference=dt.datetime(2026, 4, 2, tzinfo=dt.UTC), timezone="Europe/Vienna")


def _corpus_files() -> list[str]:
    if not SM.exists():
        return ["absent"]
    return [str(p.relative_to(SM)) for p in sorted(SM.rglob("*")) if p.is_file()]


@pytest.mark.parametrize("name", _corpus_files())
def test_corpus_file(corpus: Path, name: str) -> None:
    lines = read(SM / name)
    same(lines, thirds(len(lines)), year=2020)
    same(lines, timezone="America/New_York", year=2020)
    # no year given: inferred from the reference time (the file's mtime)
    same(lines, reference=dt.datetime(2020, 3, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_generated_logs(tmp_path: Path, seed: int) -> None:
    log = tmp_path / "sm.log"
    zone = "Europe/Vienna" if seed % 2 else "America/New_York"
    generate("sendmail", log, lines=6000, start="2026-03-07" if seed > 2 else "2026-10-24", days=3, tz=zone, seed=seed)
    lines = read(log)
    same(lines, thirds(len(lines)), year=2026, timezone=zone)
    same(lines, random_cuts(random.Random(seed), len(lines)), year=2026, timezone=zone)
    same(lines, year=2026)


def test_batches_cut_anywhere() -> None:
    # every fixture line shape at once, cut at random places many times (state carried)
    lines = [line for log in _fixture_logs() for line in read(log)]
    rng = random.Random(5)
    for _ in range(20):
        same(lines, random_cuts(rng, len(lines), most=8), year=2026, timezone=rng.choice(["UTC", "Europe/Paris"]))


def test_year_rollover_dst_and_iso_stamps() -> None:
    body = "sm-mta[1]: 6011AbCd004100: to=<a@b.c>, delay=00:00:01, mailer=esmtp, relay=mx.b.c. [192.0.2.1], dsn=2.0.0, stat=Sent"
    stamps = [
        "Dec 31 23:59:58",
        "Jan  1 00:00:01",
        "Dec 31 23:59:59",  # late line of the old year
        "Jan  1 00:00:02",
        "Oct 25 02:30:00",  # a gap in the log: same year
        "Oct 25 02:50:00",
        "Oct 25 02:20:00",  # the repeated hour's second pass
        "Mar 29 02:30:00",  # the skipped hour
        "2026-06-13T10:00:00.123456+02:00",
        "2026-06-13T10:00:00Z",
        "2026-06-13 10:00:00.5",  # no offset: the zone's
        "<22>1 2026-06-13T10:00:00+0200",
        "Feb 29 10:00:00",  # not in 2027: not syslog
        "Jun 13 10:59:60",  # a leap second
        "Jun  3 10:00:00.250",
        "Jun 13 10:00:00 <mail.info>",  # the BSD facility tag
        "Foo 13 10:00:00",
    ]
    lines = [f"{s} mx1 {body}" for s in stamps]
    lines += [f"Oct 25 02:10:00 mx1 sm-mta[1]: 6011AbCd004100: {t}" for t in ("STARTTLS=client", "x: y")]
    for zone in ("UTC", "Europe/Vienna"):
        for at in ([], [1], [2, 3], [6, 7]):
            same(lines, at, year=2026, timezone=zone)
        same(lines, reference=dt.datetime(2026, 6, 13, tzinfo=dt.UTC), timezone=zone)


def test_a_noise_line_at_a_time_no_zone_has_is_unknown() -> None:
    # 2011-12-30 never happened in Samoa (the zone skipped a day): such a line is no syslog
    # line to the reference, events or not; the noise line too
    lines = [
        "Dec 30 10:00:00 mx1 sm-mta[1]: 6011AbCd004100: STARTTLS=client, relay=x",
        "Dec 30 10:00:01 mx1 sm-mta[1]: 6011AbCd004100: to=<a@b.c>, delay=00:00:01, mailer=local, dsn=2.0.0, stat=Sent",
        "Dec 31 10:00:00 mx1 sm-mta[1]: 6011AbCd004100: STARTTLS=client, relay=x",
    ]
    ev, unknown = same(lines, year=2011, timezone="Pacific/Apia")
    assert unknown.get_column("line_no").to_list() == [0, 1]
    assert ev.height == 0


# ---- fuzz ---------------------------------------------------------------------------------------

_H = "Jun 13 10:00:00 mx1 sm-mta[900]: 65DA0000000900: "
# what a sendmail line says after its queue id
_TEXTS = [
    "from=<a@b.c>, size=5938, class=0, nrcpts=2, msgid=<x@b.c>, proto=ESMTP, daemon=MTA, relay=mx.b.c. [192.0.2.1]",
    "from=<a@b.c>, size=5938, class=0, nrcpts=2, msgid=x@b.c, proto=ESMTP, daemon=MTA, relay=mx.b.c. [192.0.2.1], tls=1",
    "from=<>, size=2400, class=0, nrcpts=1, msgid=<m@h>, bodytype=8BITMIME, proto=ESMTP, daemon=MTA, relay=localhost",
    "from=alice, size=120, class=0, nrcpts=1, msgid=<m@h>, relay=alice@localhost",
    "from=<r@y>, size=108, class=0, nrcpts=0, proto=ESMTP, daemon=MTA-v4, relay=[IPv6:2001:db8::5]",
    "to=<d@e.f>,<g@e.f>, delay=1+00:00:01, xdelay=00:00:01, mailer=esmtp, pri=245938, relay=mx.e.f. [198.51.100.7], dsn=4.0.0, stat=Deferred: 451 try again, please",
    "to=<d@e.f>, delay=00:00:01, xdelay=00:00:01, mailer=local, pri=1, dsn=2.0.0, stat=Sent (ok, relay=elsewhere [203.0.113.9])",
    "to=d@e.f, ctladdr=me (1000/1000), delay=00:00:00, mailer=relay, pri=30000, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (u31FFRab032310 Message accepted for delivery)",
    "to=<c@x.net>, delay=00:00:01, mailer=esmtp, relay=mx.x.net. [203.0.113.8], dsn=2.0.0, stat=Sent (632A0200009999 Message accepted for delivery)",
    'to="|/usr/bin/procmail", ctladdr=<erin@example.org> (1000/1000), delay=00:00:00, mailer=prog, pri=30300, dsn=2.0.0, stat=Sent',
    "to=/var/mail/x, ctladdr=x (1/1), delay=00:00:00, mailer=*file*, dsn=2.0.0, stat=Sent",
    "to=<f@x.com>, delay=00:00:01, mailer=esmtp, relay=[198.51.100.9] [198.51.100.9], dsn=5.0.0, stat=Service unavailable",
    "to=<f@x.com>, delay=5+00:00:01, mailer=esmtp, relay=mx.x.com, dsn=4.4.7, stat=Cannot send message for 5 days",
    "to=<f@x.com>, delay=00:00:01, mailer=esmtp, relay=localhost, dsn=4.0.0, stat=queued",
    "to=<a@b>, delay=00:00:01, mailer=esmtp, relay=::1 [::1], dsn=2.0.0, stat=Sent (ABCDEFGH12 Message accepted for delivery)",
    "ruleset=check_rcpt, arg1=<x@y.z>, relay=h.y.z [203.0.113.5] (may be forged), reject=550 5.7.1 Rejected: 2001:db8::5 listed at zen.spamhaus.org",
    "ruleset=check_mail, arg1=<x@y.z>, relay=h.y.z [203.0.113.5], reject=550 5.7.1 <x@y.z>... refused: to=<other@y.z>",
    "Milter: data, reject=554 5.7.1 Spam message rejected",
    "Milter: from=<a@b>, reject=553 5.7.1 blocked using dnsbl",
    "Milter: to=<a@b>, reject=550 5.7.1 no",
    "Milter: data, discard",
    "milter: Discarded by policy",
    "Milter: data, quarantine=virus found",
    "65DA0000000901: DSN: User unknown",
    "65DA0000000901: return to sender: Warning: could not send message for past 4 hours",
    "<baduser@yourhost.example>... User unknown",
    "<spamela@example.com>... Rejected as spam",
    "done; delay=1+00:00:16, ntries=2",
    "SYSERR(root): collect: I/O error on connection",
    "example.com [192.0.2.3] did not issue MAIL/EXPN/VRFY/ETRN during connection to MTA",
]
_LINES = [
    "Feb 25 03:04:00 kismet sm-mta[24422]: ruleset=check_relay, arg1=leased.by, arg2=217.21.54.82, relay=leased.by [217.21.54.82], reject=421 4.3.2 Connection rate limit exceeded.",
    "Jun 13 10:00:00 mx1 sm-mta[900]: NOQUEUE: connect from [192.0.2.1]",
    "Jun 13 10:00:00 mx1 sm-mta[900]: NOQUEUE: ruleset=check_relay, arg1=x, relay=x [1.2.3.4], reject=550 5.7.1 x",
    "Jun 13 10:00:00 mx1 sm-mta[900]: something sendmail never says",
    "Jun 17 14:37:39 <mail.notice> robin sm-mta[2794]: 65HIbcGI002794: <baduser@yourhost.example>... User unknown",
    "2026-04-02T10:00:05+02:00 mta1.example.org sm-msp-queue[3102]: 632A0001003101: 632A0005003102: DSN: User unknown",
    "Jun 13 10:00:00 mx1 sendmail[1]: 65DA0000000900: from=<a@b>, size=1, class=0, nrcpts=1, relay=x [1.2.3.4]",
    "Jun 13 10:00:00 mx1 dovecot[2807]: imap-login: Login: user=<bob>",
    "Jun 13 10:00:00 mx1 postfix/qmgr[903]: 3F1A22C01: removed",
]
_SHAPES = [_H + t for t in _TEXTS] + _LINES


def _unaccounted(lines: list[str], events: pl.DataFrame, unknown: pl.DataFrame) -> list[str]:
    """The lines that are neither an event's nor unknown, and not one of sendmail's noise lines."""
    seen = set(events.get_column("line_no")) | set(unknown.get_column("line_no"))
    noise = polars_sendmail._NOISE
    return [s for i, s in enumerate(lines) if i not in seen and s.strip() and not any(n in s for n in noise)]


def test_fuzz_random_and_mutated_lines() -> None:
    """Bounded in time (a few seconds): mutations of every line shape and random characters,
    through both parsers in batches cut at random places; the extension must never fail, must
    agree with the reference, and every line is an event's, unknown, or noise."""
    rng = random.Random(16)
    deadline = time.monotonic() + 6
    rounds = 0
    while time.monotonic() < deadline:
        lines = [mutate(rng, rng.choice(_SHAPES)) for _ in range(150)]
        lines += [_H + mutate(rng, rng.choice(_TEXTS)) for _ in range(150)]  # the header intact
        lines += ["".join(chr(rng.randrange(1, 0x300)) for _ in range(rng.randrange(60))) for _ in range(20)]
        lines += [rng.choice(_SHAPES)[: rng.randrange(120)] for _ in range(20)]
        rng.shuffle(lines)
        zone = rng.choice(["UTC", "Europe/Vienna"])
        events, unknown = same(lines, random_cuts(rng, len(lines), most=4), year=2026, timezone=zone)
        assert _unaccounted(lines, events, unknown) == []
        rounds += 1
    assert rounds >= 1


def test_a_batch_with_a_slice_offset_and_state_copy() -> None:
    # a frame sliced from a larger one (the pipeline halves failing batches) hands Arrow offsets
    # that do not start at 0; and the state is plain data the checkpoint can copy
    big = frame(["x"] * 5 + _SHAPES)
    ctx = ParseContext(year=2026, timezone="Europe/Vienna")
    sliced = sendmail.parse(big.slice(5), ctx)
    whole = sendmail.parse(
        frame(_SHAPES).with_columns(pl.col("line_no") + 5), ParseContext(year=2026, timezone="Europe/Vienna")
    )
    assert sliced.events.equals(whole.events)
    assert copy.deepcopy(ctx.state) == ctx.state


def test_the_extension_names_input_it_cannot_read() -> None:
    from msgtrace import _core

    line = _SHAPES[0].encode()

    def view(length: int, buffer: int = 0, offset: int = 0) -> bytes:  # an Arrow string view of a long text
        return length.to_bytes(4, "little") + line[:4] + buffer.to_bytes(4, "little") + offset.to_bytes(4, "little")

    one = (0).to_bytes(8, "little")
    assert _core.parse_sendmail(view(len(line)), [line], one, {"year": 2026})["rows"] == 1
    with pytest.raises(ValueError, match="line 0: its view points outside the buffers"):
        _core.parse_sendmail(view(len(line), offset=5), [line], one, {"year": 2026})  # past the end
    with pytest.raises(ValueError, match="line 0: its view points outside the buffers"):
        _core.parse_sendmail(view(len(line), buffer=1), [line], one, {"year": 2026})  # no such buffer
    with pytest.raises(ValueError, match="or its text is not UTF-8"):
        _core.parse_sendmail(view(len(line)), [line[:20] + b"\xc3" + line[21:]], one, {})  # half a character
    with pytest.raises(ValueError, match="16 bytes of views for 2 lines"):
        _core.parse_sendmail(view(len(line)), [line], bytes(16), {"year": 2026})
