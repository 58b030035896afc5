"""The compiled Exchange parser (msgtrace._core, on the production path) against the vectorised
Polars parser it replaced (tests/polars_exchange.py, kept as the reference): the same events (the
compiled parser's in the log's line order; the reference's sorted by line to compare, as it lists
a section's message rows first, then its recipients' and rewrites' rows), unknown lines and
carried state on every fixture holding an Exchange log, every file of the shared corpus's Exchange
part, generated logs over seeds, and random and mutated lines (the fuzz test, which also holds
the extension to its promise: a malformed line is an unknown line, never a crash).

Each log is also cut into batches at random places, so what one batch carries to the next (the
`#Fields` layout) is compared too; and each is read once more with the CSV reader's path turned
off in both, so the regex fallback a derailing quote sends a section to is compared on every line.
"""

from __future__ import annotations

import copy
import random
import time
from pathlib import Path

import polars as pl
import pytest

from msgtrace.generate import generate
from msgtrace.ingest.formats import detect, exchange
from msgtrace.ingest.formats.context import ParseContext
from tests import polars_exchange
from tests.conftest import CORPUS

FIXTURES = Path(__file__).parent / "fixtures"
EX = CORPUS / "exchange"


def frame(lines: list[str], first: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {"line_no": range(first, first + len(lines)), "line": lines}, schema={"line_no": pl.Int64, "line": pl.String}
    )


def _run(module: object, lines: list[str], cuts: list[int], ctx: ParseContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    events, unknown = [], []
    bounds = [0, *cuts, len(lines)]
    for a, b in zip(bounds, bounds[1:], strict=False):
        parsed = module.parse(frame(lines[a:b], a), ctx)  # type: ignore[attr-defined]
        events.append(parsed.events)
        unknown.append(parsed.unknown)
    return pl.concat(events), pl.concat(unknown)


def assert_same(lines: list[str], cuts: list[int] = (), **context: object) -> pl.DataFrame:
    """Both parsers over `lines` in batches cut at `cuts`, with ParseContext(**context)."""
    ctx_rust, ctx_ref = ParseContext(**context), ParseContext(**context)  # type: ignore[arg-type]
    ev_rust, unk_rust = _run(exchange, lines, list(cuts), ctx_rust)
    ev_ref, unk_ref = _run(polars_exchange, lines, list(cuts), ctx_ref)
    assert ev_rust.schema == ev_ref.schema
    # in line order, a line's events as the reference gives them (message, recipients, rewrites)
    assert ev_rust.get_column("line_no").is_sorted(), "the compiled parser's events are not in line order"
    ev_ref = ev_ref.sort("line_no", maintain_order=True)
    if not ev_rust.equals(ev_ref):
        diff_a = ev_rust.join(ev_ref, on=ev_rust.columns, how="anti", nulls_equal=True)
        diff_b = ev_ref.join(ev_rust, on=ev_rust.columns, how="anti", nulls_equal=True)
        rows = sorted(set(diff_a.get_column("line_no")) | set(diff_b.get_column("line_no")))[:5]
        detail = [lines[r] if r < len(lines) else r for r in rows]
        order = "" if rows else " (the same rows in another order)"
        pytest.fail(
            f"events differ{order} on lines {rows}: {detail}\n"
            f"rust: {diff_a.to_dicts()[:3]}\npolars: {diff_b.to_dicts()[:3]}"
        )
    assert unk_rust.equals(unk_ref), (unk_rust, unk_ref)
    assert ctx_rust.state == ctx_ref.state
    return ev_rust


def assert_same_both_paths(lines: list[str], cuts: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """As assert_same, then with the CSV reader's path off in both parsers (the regex fallback)."""
    assert_same(lines, cuts, source="t", host="ex01.contoso.com")
    with monkeypatch.context() as m:
        m.setattr(exchange, "_split_csv", lambda text, names: None)
        m.setattr(polars_exchange, "_split_csv", lambda text, names: None)
        assert_same(lines, cuts, source="t")


def _cuts(rng: random.Random, n: int, k: int = 3) -> list[int]:
    return sorted({rng.randrange(1, n) for _ in range(k)}) if n > 1 else []


def _read(path: Path) -> list[str]:
    return path.read_bytes().decode("utf-8", errors="replace").split("\n")


def _fixture_logs() -> list[Path]:
    """Every file under tests/fixtures that detect() calls an Exchange log."""
    out = []
    for p in sorted(FIXTURES.rglob("*")):
        if p.is_file() and p.suffix not in (".jsonl", ".parquet", ".gz", ".json"):
            head = p.read_bytes()[:4096].decode("utf-8", errors="replace").split("\n")[:20]
            if detect(head) == "exchange":
                out.append(p)
    return out


@pytest.mark.parametrize("log", _fixture_logs(), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_fixture(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _read(log)
    rng = random.Random(log.name)
    assert_same(lines, organization="contoso.com")
    assert_same_both_paths(lines, _cuts(rng, len(lines)), monkeypatch)
    # a batch of one line each: every section boundary and header carried across batches
    assert_same(lines, list(range(1, len(lines))))


def _corpus_files() -> list[str]:
    if not EX.exists():
        return ["absent"]
    return [str(p.relative_to(EX)) for p in sorted(EX.rglob("*")) if p.is_file()]


@pytest.mark.parametrize("name", _corpus_files())
def test_corpus_file(corpus: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _read(EX / name)
    assert_same(lines)
    assert_same_both_paths(lines, _cuts(random.Random(name), len(lines)), monkeypatch)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_generated_logs(tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "MSGTRK.LOG"
    generate("exchange", log, lines=5000, start="2026-03-28", days=2, seed=seed)
    lines = _read(log)
    assert_same_both_paths(lines, _cuts(random.Random(seed), len(lines), 5), monkeypatch)
    # read from its middle with no saved state: each line's width picks its layout
    assert_same(lines[len(lines) // 2 :])


def test_generated_log_with_a_quote_that_derails_the_reader(tmp_path: Path) -> None:
    log = tmp_path / "MSGTRK.LOG"
    generate("exchange", log, lines=2000, seed=5)
    lines = _read(log)
    rng = random.Random(5)
    for at in rng.sample(range(6, len(lines) - 1), 3):
        lines[at] = lines[at].replace(",", ',"', 1)  # a quote never closed
    assert_same(lines, _cuts(rng, len(lines)))


# ---- fuzz ---------------------------------------------------------------------------------------

_F2013 = (
    "#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,"
    "source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,"
    "total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,"
    "return-path,message-info,directionality,tenant-id,original-client-ip,original-server-ip,custom-data"
)
_F2010 = _F2013.replace("network-message-id,", "")
_F2016 = _F2013 + ",transport-traffic-type,log-id,schema-version"
_HEADERS = [
    _F2013,
    _F2010,
    _F2016,
    "#Fields: event-id,date-time,internal-message-id,recipient-address,recipient-status,source",
    "#Fields:  date-time , event-id,network-message-id,return-path,sender-address\r",
    "#Fields: date-time,event-id,event-id,internal-message-id,message-info,recipient-address,related-recipient-address",
]


def _line(event: str, rcpt: str = "b@x.org", status: str = "", **kw: str) -> str:
    v = {
        "date-time": "2026-06-14T09:00:10.500Z",
        "client-ip": "198.51.100.9",
        "client-hostname": "mail.example.org",
        "server-ip": "10.0.0.5",
        "server-hostname": "EX01",
        "source-context": "",
        "connector-id": "",
        "source": "SMTP",
        "event-id": event,
        "internal-message-id": "9101",
        "message-id": "<k12@mail.example.org>",
        "network-message-id": "12121212-0000-4000-8000-000000000012",
        "recipient-address": rcpt,
        "recipient-status": status,
        "total-bytes": "1000",
        "recipient-count": "1",
        "related-recipient-address": "",
        "reference": "",
        "message-subject": "Hello",
        "sender-address": "quinn@example.org",
        "return-path": "quinn@example.org",
        "message-info": "2026-06-14T09:00:00.250Z",
    }
    v.update({k.replace("_", "-"): x for k, x in kw.items()})
    names = _F2013.removeprefix("#Fields: ").split(",")
    return ",".join(v.get(n, "") for n in names)


_SHAPES = [
    _line("RECEIVE", "a@x.org;b@x.org;;c@x.org", recipient_count="3"),
    _line("RECEIVE", "a@x.org", source="STOREDRIVER"),
    _line("RECEIVE", "a@x.org", source=""),
    _line("SUBMIT", "", source="STOREDRIVER", total_bytes="+12"),
    _line("DSN", "quinn@example.org", return_path="<>", reference="<k11@x>"),
    _line("DELIVER", "a@x.org", "250 2.1.5 RecipientSuccessfullyDelivered", source="STOREDRIVER"),
    _line("DELIVER", "a@x.org;b@x.org", "250 2.1.5 ok;550 5.1.1 unknown;To:x", message_info="2026-06-14T09:00:00Z"),
    _line("SEND", "c@y.org", '"250 2.6.0 <a,b@x> Queued mail for delivery"', server_ip="203.0.113.7"),
    _line("FAIL", "d@y.org", "550 5.7.1 Message rejected as spam by Content Filtering", source_context="SCL=9"),
    _line("FAIL", "d@y.org;e@y.org", "550 4.4.7 QUEUE.Expired;Message expired;5.4.1 x", message_info="bad"),
    _line("DROP", "f@y.org", "", source_context="phishing"),
    _line(
        "DEFER", "g@y.org", '"451 4.4.0 Primary target IP address responded with: ""421 4.4.2 Connection dropped."""'
    ),
    _line("EXPAND", "m1@x.org;m2@x.org", related_recipient_address="group@x.org"),
    _line("RESOLVE", "a@x.org;b@x.org", related_recipient_address="alias-a@x.org;alias-b@x.org"),
    _line("RESOLVE", "F@x.org", related_recipient_address=" f@X.org ;z@x.org"),
    _line("REDIRECT", "h@x.org", related_recipient_address="old@x.org", recipient_count="x"),
    _line("REDIRECT", "", related_recipient_address="old@x.org"),
    _line("NOTIFYMAPI", "", internal_message_id="", network_message_id=""),
    _line("AGENTINFO", "", source="AGENT", source_context='"S:AMA=SUM|action=p|error=|atch=0;S:CompCost=|ETR=0"'),
    _line("HAREDIRECT", "a@x.org", source_context='"EX2.x = 250 2.6.0 <1@x> [InternalId=1, Hostname=x] Queued"'),
    _line(
        "DELIVER",
        "a@x.org",
        "250 2.1.5 ok",
        date_time="2026-06-14T23:59:60.9999999Z",
        message_info="2026-06-14T23:59:59.5Z",
    ),
    _line(
        "DELIVER",
        "a@x.org",
        "250 2.1.5 ok",
        date_time="+2026-6-14T9:0:1Z",
        message_subject='"Re: ""quoted"", and, commas"',
    ),
    _line("DELIVER", "a@x.org", "٢٥٠ ٢.١.٥ ok", date_time=" 2026-06-14T09:00:01.5Z"),
    _line("RECEIVE", "Ä@x.org", message_subject="Grüße ΣΑΣ", date_time="0000-12-31T23:59:60Z"),
    "14/06/2026 09:00:02,198.51.100.9,mail.example.org,,EX01,,,SMTP,RECEIVE,9101,<k@x>,nid,bob@x.org,,1,1",
    "#Software: Microsoft Exchange Server",
    "",
    "\r",
]
_NOISE = [",", '"', '""', ";", " ", "\r", "\t", "é", "٣", "\u00a0", "\ufeff", "Z", "T", ":", ".", "-", "0", "9", "<>"]


def _mutate(rng: random.Random, line: str) -> str:
    chars = list(line)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        at = rng.randrange(len(chars) + 1)
        if op < 0.35 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(at, rng.choice(_NOISE))
        elif op < 0.9:
            cut = rng.randrange(len(chars) + 1)
            chars = chars[:cut]
        else:  # a field's text replaced with another field's
            chars = list(",".join(rng.sample(line.split(","), min(3, line.count(",") + 1))))
    return "".join(chars)


def _batch(rng: random.Random) -> list[str]:
    # mostly well-formed (so the CSV reader's path is taken), a section at a time
    lines: list[str] = [rng.choice(_HEADERS)] if rng.random() < 0.8 else []
    clean = rng.random() < 0.5
    for _ in range(rng.randrange(1, 120)):
        r = rng.random()
        if r < 0.03:
            lines.append(rng.choice(_HEADERS))
        elif clean or r < 0.6:
            lines.append(rng.choice(_SHAPES))
        elif r < 0.95:
            lines.append(_mutate(rng, rng.choice(_SHAPES)))
        else:
            lines.append("".join(chr(rng.randrange(1, 0x300)) for _ in range(rng.randrange(60))).replace("\n", " "))
    return lines


def _accounted(lines: list[str], events: pl.DataFrame, unknown: pl.DataFrame) -> None:
    """Every line is an event's or an unknown one, but comments, blank lines and lines that name
    no message id (the shapes' ids are 9101 and 12121212-...; a mutation that shifts the fields
    moves other text into those columns, never nothing)."""
    seen = set(events.get_column("line_no")) | set(unknown.get_column("line_no"))
    for i, line in enumerate(lines):
        text = line.lstrip("\ufeff") if i == 0 else line
        if i in seen or text.startswith("#") or text in ("", "\r"):
            continue
        assert "9101" not in line and "12121212" not in line, (i, line)


def test_fuzz_random_and_mutated_lines() -> None:
    """Bounded in time (a few seconds): mutations of every line shape, quotes that derail the
    reader, random text, in random batches; the extension must never fail and must agree."""
    rng = random.Random(16)
    deadline = time.monotonic() + 8
    rounds = 0
    while time.monotonic() < deadline:
        lines = [line for _ in range(rng.randrange(1, 4)) for line in _batch(rng)]
        cuts = _cuts(rng, len(lines), rng.randrange(0, 4))
        assert_same(lines, cuts, source="fuzz")
        ctx = ParseContext()
        events, unknown = _run(exchange, lines, cuts, ctx)
        _accounted(lines, events, unknown)
        rounds += 1
    assert rounds >= 1


def test_a_header_with_no_column_the_parser_reads() -> None:
    # the reference fails on such a section (a ShapeError from its empty projection); every line
    # of it is an unknown line here, and the next header's section reads as usual
    lines = ["#Fields: foo,bar", "a,b", "c,d,e", _HEADERS[0], _SHAPES[5]]
    parsed = exchange.parse(frame(lines), ParseContext())
    assert parsed.unknown.get_column("line_no").to_list() == [1, 2]
    assert parsed.events.get_column("line_no").to_list() == [4]


def test_a_batch_with_a_slice_offset_and_state_copy() -> None:
    # a frame sliced from a larger one (the pipeline halves failing batches) hands Arrow offsets
    # that do not start at 0; and the state is plain data the checkpoint can copy
    lines = [_HEADERS[0], *_SHAPES]
    big = frame(["x"] * 5 + lines)
    ctx = ParseContext()
    sliced = exchange.parse(big.slice(5), ctx)
    whole = exchange.parse(frame(lines).with_columns(pl.col("line_no") + 5), ParseContext())
    assert sliced.events.equals(whole.events)
    assert copy.deepcopy(ctx.state) == ctx.state


def test_the_extension_names_input_it_cannot_read() -> None:
    from msgtrace import _core

    line = _SHAPES[5].encode()

    def view(length: int, buffer: int = 0, offset: int = 0) -> bytes:  # an Arrow string view of a long text
        return length.to_bytes(4, "little") + line[:4] + buffer.to_bytes(4, "little") + offset.to_bytes(4, "little")

    one = (0).to_bytes(8, "little")
    fields = _F2013.removeprefix("#Fields: ").split(",")
    assert _core.parse_exchange(view(len(line)), [line], one, fields, True)["rows"] == 1
    with pytest.raises(ValueError, match="line 0: its view points outside the buffers"):
        _core.parse_exchange(view(len(line), offset=5), [line], one, fields, True)
    with pytest.raises(ValueError, match="or its text is not UTF-8"):
        _core.parse_exchange(view(len(line)), [line[:20] + b"\xc3" + line[21:]], one, None, True)
    with pytest.raises(ValueError, match="16 bytes of views for 2 lines"):
        _core.parse_exchange(view(len(line)), [line], bytes(16), None, True)
