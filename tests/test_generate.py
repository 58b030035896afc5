"""The seeded log generator: determinism, the mix of a real server, size control, and (where the
parsers exist) ingesting generated logs must give exactly the generator's ground truth."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from msgtrace.generate import FORMATS, build, generate
from msgtrace.generate import truth as T
from msgtrace.generate.cli import generate as generate_cmd

ROOT = Path(__file__).resolve().parent.parent


def _gen(tmp_path: Path, fmt: str = "postfix", name: str = "mail.log", **kw) -> tuple[Path, pl.DataFrame]:
    out = tmp_path / name
    generate(fmt, out, **kw)
    return out, pl.read_parquet(f"{out}.truth.parquet")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_same_seed_same_bytes(tmp_path: Path, fmt: str) -> None:
    a, ta = _gen(tmp_path, fmt, "a.log", lines=2000, seed=7)
    b, tb = _gen(tmp_path, fmt, "b.log", lines=2000, seed=7)
    c, _ = _gen(tmp_path, fmt, "c.log", lines=2000, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert ta.equals(tb)
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("target", [300, 5000])
def test_size_is_close_to_lines(tmp_path: Path, fmt: str, target: int) -> None:
    out = tmp_path / "mail.log"
    summary = generate(fmt, out, lines=target)
    written = out.read_text(encoding="utf-8-sig").count("\n") - (5 if fmt == "exchange" else 0)
    assert written == summary.lines
    assert target <= written <= target * 1.05 + 60


@pytest.mark.slow
def test_gzip_output_is_the_same_log(tmp_path: Path) -> None:
    plain, _ = _gen(tmp_path, "postfix", "a.log", lines=1500)
    packed, _ = _gen(tmp_path, "postfix", "a.log.gz", lines=1500)
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()


@pytest.mark.slow
def test_postfix_has_the_mix_of_a_real_server(tmp_path: Path) -> None:
    log, rows = _gen(tmp_path, "postfix", lines=40_000, days=8)
    text = log.read_text()
    for shape in [
        r"NOQUEUE: reject: RCPT from \S+\[[\d.:a-f]+\]: 554 5\.7\.1 .*blocked using zen\.spamhaus\.org",
        r"NOQUEUE: reject: .*User unknown",
        r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:10024, .*status=sent \(.*queued as [0-9A-F]+\)",
        r"postfix/smtpd\[\d+\]: [0-9A-F]+: client=localhost\[127\.0\.0\.1\]",
        r"amavis\[\d+\]: \(\d+-\d+\) Passed CLEAN",
        r"to=<[^>]+>, orig_to=<[^>]+>, relay=local",
        r"status=bounced",
        r"sender non-delivery notification: [0-9A-F]+",
        r"status=expired, returned to sender",
        r"client=\S+\[[0-9a-f]+:[0-9a-f:]+\]",
        r"relay=\S+\[[0-9a-f]+:[0-9a-f:]+\]:25",
        r"nrcpt=[2-9]",
        r"warning: header Subject: ",
        r"postfix/pickup\[\d+\]: [0-9A-F]+: uid=\d+ from=<",
        r"relay=\S+\[private/dovecot-lmtp\]",
    ]:
        assert re.search(shape, text), shape
    # a recipient deferred first and delivered hours later under the same queue id
    deferred = set(re.findall(r"([0-9A-F]{8,12}): to=<([^>]+)>.*status=deferred", text))
    sent = set(re.findall(r"([0-9A-F]{8,12}): to=<([^>]+)>.*status=sent", text))
    assert deferred & sent
    statuses = set(rows["Status"])
    assert {"Delivered", "Pending", "Failed", "Expanded", "None", "FilteredAsSpam"} <= statuses
    assert (rows["SenderAddress"] == "").any()  # bounce notices come from <>
    assert rows["FromIP"].str.contains(":").any()


@pytest.mark.slow
def test_messages_without_delivery_yet_are_getting_status(tmp_path: Path) -> None:
    found = False
    for seed in range(1, 6):
        _, rows = _gen(tmp_path, "postfix", f"s{seed}.log", lines=3000, seed=seed)
        found |= rows.filter((pl.col("Status") == "GettingStatus") & (pl.col("RecipientAddress") == "")).height > 0
    assert found


def test_long_queue_ids(tmp_path: Path) -> None:
    log, _ = _gen(tmp_path, "postfix", lines=500, long_ids=True)
    qids = re.findall(r"\]: ([0-9A-Za-z]+): client=", log.read_text())
    assert qids and all(
        re.fullmatch(r"[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10}z[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]+", q) for q in qids
    )


def test_new_year_rollover(tmp_path: Path) -> None:
    log, rows = _gen(tmp_path, "postfix", lines=3000, start="2026-12-31", days=2, tz="Europe/Berlin")
    text = log.read_text()
    assert text.startswith("Dec 31") and "\nJan  1 " in text
    years = set(rows["Received"].dt.year())
    assert years == {2026, 2027}


def test_window_and_zone(tmp_path: Path) -> None:
    model, _ = build("postfix", 2000, start="2026-06-01", days=3, tz="Europe/Berlin")
    t0 = model.msgs["t0"]
    # Berlin is UTC+2 in June: the window is 2026-05-31T22:00Z .. 2026-06-03T22:00Z
    assert t0.min() >= 1780264800_000000 and t0.max() < 1780264800_000000 + 3 * 86400_000000


def test_cli_writes_log_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "x.log"
    res = CliRunner().invoke(generate_cmd, ["--format", "postfix", "--lines", "800", "--seed", "3", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Wrote ") and "truth:" in res.output
    assert out.exists() and Path(f"{out}.truth.parquet").exists() and Path(f"{out}.truth.jsonl").exists()


def test_cli_rejects_bad_zone_and_date(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(generate_cmd, ["--timezone", "Mars/Olympus", str(tmp_path / "x.log")])
    assert res.exit_code != 0 and "Error: unknown time zone 'Mars/Olympus'" in res.output
    res = runner.invoke(generate_cmd, ["--start", "31/12/2026", str(tmp_path / "x.log")])
    assert res.exit_code != 0 and "Error: --start '31/12/2026' is not an ISO date" in res.output


# --- generated logs through the real ingest: the store must equal the ground truth ---------------

_CASES = [
    {"lines": 4000},
    {"lines": 4000, "start": "2026-12-31", "days": 2, "tz": "Europe/Berlin", "seed": 2},
    {"lines": 6000, "days": 8, "seed": 3},
    {"lines": 3000, "seed": 4, "long_ids": True},
]


def _case(fmt: str, case: int) -> dict:
    kw = dict(_CASES[case])
    if kw.get("long_ids") and fmt != "postfix":
        pytest.skip("long queue ids are Postfix only")
    return kw


def _assert_same(expected: pl.DataFrame, got: pl.DataFrame) -> None:
    missing = expected.join(got, on=expected.columns, how="anti", nulls_equal=True)
    extra = got.join(expected, on=expected.columns, how="anti", nulls_equal=True)
    assert missing.height == 0 and extra.height == 0, f"missing:\n{missing}\nextra:\n{extra}"
    assert got.height == expected.height


# Host for formats whose lines name none (Exim mainlog, Exchange), as `msgtrace ingest --host` would give it.
_HOST = {"exim": "mx1.example.org", "exchange": "mx1.example.org"}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", range(len(_CASES)))
def test_parse_and_correlate_match_truth(tmp_path: Path, fmt: str, case: int) -> None:
    """The parser and correlator alone, on the whole log in one batch."""
    from msgtrace.ingest.correlate import correlate
    from msgtrace.ingest.formats import ParseContext, parser

    kw = _case(fmt, case)
    log, expected = _gen(tmp_path, fmt, **kw)
    lines = pl.DataFrame({"line": log.read_text(encoding="utf-8-sig").splitlines()})
    lines = lines.with_row_index("line_no").with_columns(pl.col("line_no").cast(pl.Int64))
    ctx = ParseContext(
        timezone=str(kw.get("tz", "UTC")), year=int(str(kw.get("start", "2026"))[:4]), host=_HOST.get(fmt)
    )
    parsed = parser(fmt).parse(lines, ctx)
    assert parsed.unknown.height == 0, parsed.unknown.head(3)
    _assert_same(expected, T.to_contract(correlate(parsed.events)))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", range(len(_CASES)))
def test_ingest_matches_truth(tmp_path: Path, fmt: str, case: int) -> None:
    """The whole pipeline: read, parse, correlate, store."""
    from msgtrace.ingest.pipeline import IngestOptions, ingest_paths
    from msgtrace.store import Store

    kw = _case(fmt, case)
    log, expected = _gen(tmp_path, fmt, **kw)
    options = IngestOptions(
        timezone=str(kw.get("tz", "UTC")), year=int(str(kw.get("start", "2026"))[:4]), host=_HOST.get(fmt)
    )
    report = ingest_paths([str(log)], tmp_path / "store", options)
    assert report.unknown == 0, report.files[0].unknown_sample
    got = T.to_contract(Store(tmp_path / "store").messages.scan().collect())
    _assert_same(expected, got)
