"""The compiled Exim parser (msgtrace._core, on the production path) against the vectorised
Polars parser it replaced (tests/polars_exim.py, kept as the reference): the same events,
unknown lines and carried state on every golden fixture with Exim lines, every file of the
shared corpus's exim/ (each test-suite log by its path in the archive), generated logs over
seeds and zones (bare, and with syslog and journald headers put in front), and random and
mutated lines (the fuzz test, which also holds the extension to its promise: a malformed line is
an event or an unknown line, never a crash).

Each log is also cut into batches at a few places, so what one batch carries to the next (the
syslog year and latest wall time, Exim's own latest wall time, the alias groups with one member
so far) is compared too.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import random
import re
import tarfile
import time
from pathlib import Path

import polars as pl
import pytest

from msgtrace.generate import generate
from msgtrace.ingest.formats import exim
from msgtrace.ingest.formats.context import ParseContext
from tests import helpers_compiled, polars_exim
from tests.conftest import CORPUS
from tests.helpers_compiled import frame, read, thirds

FIXTURES = Path(__file__).parent / "fixtures"
EX = CORPUS / "exim"
SUITE = "exim-testsuite-test-log.tar.gz"


def assert_same(lines: list[str], cuts: list[int] = (), **context: object) -> pl.DataFrame:
    """Both parsers over `lines` in batches cut at `cuts`, with ParseContext(**context)."""
    return helpers_compiled.assert_same(exim, polars_exim, lines, cuts, **context)[0]


def _random_cuts(rng: random.Random, n: int) -> list[int]:
    return sorted({rng.randrange(n + 1) for _ in range(rng.randint(1, 6))} - {0, n}) if n > 1 else []


def _fixture_logs() -> list[Path]:
    """Every fixture log with Exim lines: the exim/ ones, and any other the detection calls Exim."""
    logs = sorted((FIXTURES / "exim").glob("*.log"))
    others = [p for p in sorted(FIXTURES.rglob("*.log")) if p.parent.name != "exim" and exim.detect(read(p)[:50])]
    return logs + others


@pytest.mark.parametrize("log", _fixture_logs(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_golden_fixture(log: Path) -> None:
    lines = read(log)
    assert_same(lines, timezone="Europe/Paris", year=2026, host="mx1.example.com", source="fixture")
    assert_same(lines, thirds(len(lines)), year=2026, timezone="Europe/Vienna")
    for i in range(1, len(lines)):  # every cut of a small fixture: the state carried at every line
        assert_same(lines, [i], year=2026, timezone="Europe/Paris", host="mx1")


@functools.cache
def _suite() -> dict[str, list[str]]:
    with tarfile.open(EX / SUITE) as tar:
        return {
            m.name: tar.extractfile(m).read().decode("utf-8", "replace").splitlines()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def _corpus_files() -> list[str]:
    if not EX.exists():
        return ["absent"]
    plain = [p.name for p in sorted(EX.iterdir()) if p.is_file() and not p.name.endswith(".gz")]
    return plain + [f"{SUITE}:{m}" for m in sorted(_suite())]


@pytest.mark.slow
@pytest.mark.parametrize("name", _corpus_files())
def test_corpus_file(corpus: Path, name: str) -> None:
    lines = _suite()[name.split(":", 1)[1]] if name.startswith(f"{SUITE}:") else read(EX / name)
    assert_same(lines, thirds(len(lines)), year=2020)
    assert_same(lines, timezone="America/New_York", year=2020, host="mx1")
    # no year given: inferred from the reference time (the file's mtime)
    assert_same(lines, reference=dt.datetime(2020, 3, 1, tzinfo=dt.UTC))


def test_corpus_fail2ban_fast(corpus: Path) -> None:
    # the one plain corpus file, also outside the slow set: syslog and journald headers, foreign lines
    lines = read(EX / "fail2ban-exim.log")
    assert_same(lines, thirds(len(lines)), year=2013, timezone="Europe/Vienna")


def _wrapped(lines: list[str], rng: random.Random) -> list[str]:
    """Generated bare lines, some behind a syslog or journald header (the stamp kept in the body or not)."""
    out = []
    for s in lines:
        r = rng.random()
        if r < 0.15 and len(s) > 20:
            stamp = dt.datetime.strptime(s[:19], "%Y-%m-%d %H:%M:%S")
            out.append(f"{stamp:%b} {stamp.day:2d} {stamp:%H:%M:%S} mx1 exim[42]: {s[20:]}")
        elif r < 0.25:
            out.append(f"mx2 exim4[43]: {s}")
        elif r < 0.3:
            out.append(f"Mar 29 02:30:00 mx1 exim[44]: {s}")
        else:
            out.append(s)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_logs(tmp_path: Path, seed: int) -> None:
    log = tmp_path / "exim.log"
    generate("exim", log, lines=6000, start="2026-03-28", days=3, tz="Europe/Vienna", seed=seed)
    lines = read(log)
    assert_same(lines, thirds(len(lines)), year=2026, timezone="Europe/Vienna")
    assert_same(lines, year=2026, host="mx1.example.org")
    rng = random.Random(seed)
    assert_same(lines, _random_cuts(rng, len(lines)), year=2026, timezone="Europe/Vienna")
    wrapped = _wrapped(lines, rng)
    assert_same(wrapped, _random_cuts(rng, len(wrapped)), year=2026, timezone="Europe/Vienna")
    assert_same(wrapped, reference=dt.datetime(2026, 3, 30, tzinfo=dt.UTC), timezone="Europe/Vienna")


def test_times_ids_and_zones() -> None:
    lines = [
        "2026-10-25 02:30:00 1vA1bC-0000Ab-1x Completed",
        "2026-10-25 02:50:00 1vA1bC-0000Ab-1y Completed",
        "2026-10-25 02:20:00 1vA1bC-0000Ab-1z Completed",  # the repeated hour's second pass
        "2026-03-29 02:30:00 1vA1bC-0000Ab-2a Completed",  # the skipped hour
        "2026-03-03 09:15:02.123 +0100 [4242] 10HmaX-000000005vi-0000 Completed",
        "2026-03-03 09:15:02.1234567 10HmaX-000000005vi-0001 Completed",  # 7 fraction digits: no stamp
        "2026-03-03 09:15:02 +0100x 10HmaX-000000005vi-0002 Completed",
        "2026-03-03 09:15:02 +9959 10HmaX-000000005vi-0003 Completed",
        "2026-02-30 09:15:02 10HmaX-000000005vi-0004 Completed",
        "2026-06-13 10:59:60 10HmaX-000000005vi-0005 Completed",  # a leap second
        "2026-03-03 09:15:01 [1234567890] 1vA1bC-0000Ab-1x Completed",  # a pid too long for the cut
        "2026-03-03 09:15:01 [٣] 1vA1bC-0000Ab-1x Completed",
        "2026-03-03 09:15:01 1vA1bC-0000Ab-1x",
        "2026-03-03 09:15:01 1vA1bC-0000Ab-1x  Completed",
        "2026-03-03 09:15:01 1vA1bC-0000Ab-1xCompleted",
        "Dec 31 23:59:58 mx1 exim[1]: 1vA1bC-0000Ab-3a Completed",
        "Jan  1 00:00:01 mx1 exim[1]: 1vA1bC-0000Ab-3b Completed",
        "Dec 31 23:59:59 mx1 exim[1]: 2026-12-31 23:59:59 1vA1bC-0000Ab-3c Completed",
        "2026-06-13T10:00:00.123456+02:00 mx1 exim[1]: 1vA1bC-0000Ab-3d Completed",
        "Feb 29 10:00:00 mx1 exim[1]: 1vA1bC-0000Ab-3e Completed",  # not in 2027: no time
        "mx1 exim[1]: 1vA1bC-0000Ab-3f Completed",  # journald without a stamp: no time
        "Jun 13 10:00:00 mx1 dovecot: imap exim something",
        "   ",
        "",
        "\t\u00a0",
    ]
    for zone in ("UTC", "Europe/Vienna"):
        for cuts in ([], [1], [2, 3], [6, 7], [16, 17]):
            assert_same(lines, cuts, year=2026, timezone=zone)
        assert_same(lines, reference=dt.datetime(2026, 6, 13, tzinfo=dt.UTC), timezone=zone)


def test_alias_groups_across_batches() -> None:
    lines = [
        "2026-03-03 09:00:00 1vA1bC-0000Ab-1x <= a@x H=[192.0.2.1] P=esmtp S=1",
        "2026-03-03 09:00:01 1vA1bC-0000Ab-1x => b@y <list@x> R=r T=t",
        "2026-03-03 09:00:02 1vA1bC-0000Ab-1x == c@y <list@x> R=r T=t defer (-44): later",
        "2026-03-03 09:00:03 1vA1bC-0000Ab-1x => B@y <list@x> R=r T=t",
        "2026-03-03 09:00:04 1vA1bC-0000Ab-1y => d@y <other@x> R=r T=t",
        "2026-03-03 10:00:02 1vA1bC-0000Ab-1x => c@y <list@x> R=r T=t",
        "2026-03-03 10:00:03 1vA1bC-0000Ab-1x Completed",
        "2026-03-03 10:00:04 1vA1bC-0000Ab-1y => e@y <other@x> R=r T=t",
        "2026-03-03 10:00:05 1vA1bC-0000Ab-1z => bob <bob@x> R=r T=t",
    ]
    for i in range(len(lines)):
        for j in range(i, len(lines)):
            assert_same(lines, sorted({i, j} - {0}), year=2026)


# ---- fuzz ---------------------------------------------------------------------------------------

_SHAPES = [
    '2026-03-03 09:15:01 1vA1bC-0000Ab-1x <= al@example.org H=mx.example.org (helo) [192.0.2.1]:4321 P=esmtps S=2048 id=a@b T="Hi \\"there\\" \\\\ x" for b@c d@e',
    '2026-03-03 09:15:02.123 +0100 [4242] 1vA1bC-0000Ab-1x => bob@example.com <team@example.com> R=dnslookup T=remote_smtp H=mx.example.com [198.51.100.7] C="250 OK id=1" QT=1h2m3.5s DT=0s',
    '2026-03-03 09:15:02 1vA1bC-0000Ab-1x -> bob <bob@example.com> R=local_user T=dovecot_lmtp C="250 2.0.0 <bob@example.com> k3j2 Saved"',
    "2026-03-03 09:15:02 1vA1bC-0000Ab-1x >> |/usr/bin/procmail -d x (alias@example.com) <list@example.com> R=pipe T=address_pipe",
    "2026-03-03 09:15:02 1vA1bC-0000Ab-1x *> /var/mail/x <x@example.com> R=r T=t",
    "2026-03-03 09:15:02 1vA1bC-0000Ab-1x => :blackhole: <spam@example.com> R=blackhole_router",
    "2026-03-03 09:15:02 1vA1bC-0000Ab-1x == carl@web.de R=dnslookup T=remote_smtp defer (-44) H=mx-ha03.web.de [198.51.100.7]: SMTP error from remote mail server after RCPT TO:<carl@web.de>: 451 4.7.1 Greylisted",
    "2026-03-03 09:15:02 1vA1bC-0000Ab-1x ** dora@gmx.de R=dnslookup T=remote_smtp H=mx00.emig.gmx.net [198.51.100.4]: SMTP error from remote mail server after RCPT TO:<dora@gmx.de>: 550 5.1.1 <dora@gmx.de>: Recipient address rejected",
    '2026-03-03 09:15:02 1vA1bC-0000Ab-1x => x@y R=r T=t H=[203.0.113.5] C="250 ok" QT=0.349s',
    '2026-03-03 09:15:03 1vAbCe-000Xz0-CD <= <> R=1vAbCd-000Xyz-AB U=Debian-exim P=local S=2345 T="Undelivered Mail Returned to Sender"',
    "2026-03-03 09:15:03 1vA1bC-0000Ab-1x Completed",
    "2026-03-03 09:15:03 1vA1bC-0000Ab-1x Frozen by the system filter",
    "2026-03-03 09:15:03 1vA1bC-0000Ab-1x frozen by root",
    "2026-03-03 09:15:03 1vA1bC-0000Ab-1x removed by root",
    "2026-03-03 09:15:03 1vA1bC-0000Ab-1x H=(x) [203.0.113.9] F=<a@b> rejected after DATA: spam detected",
    "2026-03-03 09:15:04 H=(helo.example) [203.0.113.66]:5123 I=[192.0.2.25]:25 F=<x@y.z> rejected RCPT <bob@example.org>: 203.0.113.66 is listed in zen.spamhaus.org",
    "2026-03-03 09:15:04 H=host [203.0.113.66] temporarily rejected MAIL <x@y>: try later",
    "2026-03-03 09:15:04 H=host [203.0.113.66] rejected RCPT bob: relay not permitted",
    "2026-03-03 09:15:04 SMTP connection from [192.0.2.1]:4242 (TCP/IP connection count = 1)",
    "2026-03-03 09:15:04 Start queue run: pid=123",
    "2026-03-03 09:15:04 login authenticator failed for h ([1.2.3.4]) [1.2.3.4]: 535 Incorrect",
    "2026-03-03 09:15:04 some foreign line",
    "Mar  3 09:15:03 mx1 exim[4242]: 1vA1bC-0000Ab-1x Completed",
    "Mar  3 09:15:03 mx1 exim[4242]: 2026-03-03 09:15:03 1vA1bC-0000Ab-1x => a@b R=r T=t",
    "mx1 exim[4242]: 2026-03-03 09:15:04 H=(x) [203.0.113.9] F=<a@b> rejected RCPT <c@d>: relay not permitted",
    "2026-03-03T09:18:00+01:00 mx3.example.net exim4[4245]: 1vE5fJ-0000Bb-4d <= frank@example.org H=[192.0.2.13] P=esmtp S=40",
    "2026-03-03 09:19:00 info exim[4246]: [4246] 1vE5fK-0000Bb-5e Completed",
    "2026-03-03 09:19:00 exim 4.96 daemon started: pid=1",
]
_NOISE = [
    " ",
    ":",
    "[",
    "]",
    "<",
    ">",
    "(",
    ")",
    '"',
    "\\",
    "=",
    "-",
    "@",
    ",",
    "\t",
    "\x0b",
    "é",
    "٣",
    "\u00a0",
    "0",
    "9",
    "|",
]


_BLANK = re.compile(r"\s*\Z")
_OWN_NOISE = re.compile(polars_exim._NOISE.removeprefix("^"))


def _mutate(rng: random.Random, line: str) -> str:
    chars = list(line)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        at = rng.randrange(len(chars) + 1)
        if op < 0.4 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(at, rng.choice(_NOISE))
        else:
            chars = chars[: rng.randrange(len(chars) + 1)]
    return "".join(chars)


def test_fuzz_random_and_mutated_lines() -> None:
    """Bounded in time (a few seconds): mutations of every line shape and random text, through
    both parsers in batches; the extension must never fail, must account for every line (an
    event or an unknown line, or a blank line dropped) and must agree with the reference."""
    rng = random.Random(16)
    deadline = time.monotonic() + 6
    rounds = 0
    while time.monotonic() < deadline:
        lines = [_mutate(rng, rng.choice(_SHAPES)) for _ in range(300)]
        lines += ["".join(chr(rng.randrange(1, 0x300)) for _ in range(rng.randrange(60))) for _ in range(20)]
        lines += [rng.choice(_SHAPES)[: rng.randrange(80)] for _ in range(20)]
        rng.shuffle(lines)
        events = assert_same(
            lines, _random_cuts(rng, len(lines)), year=2026, timezone=rng.choice(["UTC", "Europe/Vienna"])
        )
        parsed = exim.parse(frame(lines), ParseContext(year=2026))
        seen = set(events.get_column("line_no")) | set(parsed.unknown.get_column("line_no"))
        # a line is an event, an unknown line, or dropped as Exim's own noise or a blank line
        rest = [s for i, s in enumerate(lines) if i not in seen]
        assert all(_BLANK.match(s) or _OWN_NOISE.search(s) for s in rest), rest
        rounds += 1
    assert rounds >= 1


def test_a_batch_with_a_slice_offset_and_state_copy() -> None:
    # a frame sliced from a larger one (the pipeline halves failing batches) hands Arrow offsets
    # that do not start at 0; and the state is plain data the checkpoint can copy
    big = frame(["x"] * 5 + _SHAPES)
    ctx = ParseContext(year=2026)
    sliced = exim.parse(big.slice(5), ctx)
    whole = exim.parse(frame(_SHAPES).with_columns(pl.col("line_no") + 5), ParseContext(year=2026))
    assert sliced.events.equals(whole.events)
    assert copy.deepcopy(ctx.state) == ctx.state


def test_the_extension_names_input_it_cannotread() -> None:
    from msgtrace import _core

    line = b"2026-03-03 09:15:03 1vA1bC-0000Ab-1x Completed"

    def view(length: int, buffer: int = 0, offset: int = 0) -> bytes:  # an Arrow string view of a long text
        return length.to_bytes(4, "little") + line[:4] + buffer.to_bytes(4, "little") + offset.to_bytes(4, "little")

    one = (0).to_bytes(8, "little")
    assert _core.parse_exim(view(len(line)), [line], one, {"year": 2026})["rows"] == 1
    with pytest.raises(ValueError, match="line 0: its view points outside the buffers"):
        _core.parse_exim(view(len(line), offset=5), [line], one, {"year": 2026})
    with pytest.raises(ValueError, match="or its text is not UTF-8"):
        _core.parse_exim(view(len(line)), [line[:20] + b"\xc3" + line[21:]], one, {})
    with pytest.raises(ValueError, match="16 bytes of views for 2 lines"):
        _core.parse_exim(view(len(line)), [line], bytes(16), {"year": 2026})


def test_state_through_the_checkpoint_file() -> None:
    # the carried state is saved as JSON between runs (tuples come back as lists, datetimes as
    # ISO strings): both parsers carry on from it alike, the alias groups included
    import json

    from msgtrace.ingest.checkpoint import from_jsonable, jsonable

    lines = [
        "2026-03-03 09:00:01 1vA1bC-0000Ab-1x => b@y <list@x> R=r T=t",
        "Mar  3 09:00:02 mx1 exim[1]: 1vA1bC-0000Ab-1y => c@y <other@x> R=r T=t",
        "2026-03-03 10:00:02 1vA1bC-0000Ab-1x => c@y <list@x> R=r T=t",
        "Mar  3 10:00:03 mx1 exim[1]: 1vA1bC-0000Ab-1y => d@y <other@x> R=r T=t",
    ]
    got = []
    for module in (exim, polars_exim):
        ctx = ParseContext(year=2026, timezone="Europe/Vienna")
        module.parse(frame(lines[:2]), ctx)
        saved = from_jsonable(json.loads(json.dumps(jsonable(ctx.state))))
        ctx = ParseContext(year=2026, timezone="Europe/Vienna", state=saved)
        got.append((module.parse(frame(lines[2:], 2), ctx).events.sort("line_no", "kind"), ctx.state))
    (rust, rust_state), (ref, ref_state) = got
    assert rust.equals(ref) and rust_state == ref_state
    assert rust.filter(pl.col("kind") == "expand").height == 2
