"""One `msgtrace ingest` of a directory holding Postfix, Exim, Sendmail and Exchange logs:
`msgtrace trace` finds every message of each with the right status, addresses, IPs, size and subject."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from msgtrace.cli import cli
from msgtrace.generate import generate
from msgtrace.generate import truth as T

FILES = {"postfix": "mail.log", "exim": "exim_mainlog", "sendmail": "maillog", "exchange": "MSGTRK2026060100-1.LOG"}
COLUMNS = ["Organization", "MessageId", "Received", "SenderAddress", "RecipientAddress", "Subject", "Status", "ToIP",
           "FromIP", "Size"]  # fmt: skip


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    logs = tmp_path_factory.mktemp("logs")
    truths = []
    for seed, (fmt, name) in enumerate(FILES.items(), start=3):
        generate(fmt, logs / name, lines=1500, start="2026-06-01", days=1, seed=seed)
        truths.append(pl.read_parquet(logs / f"{name}.truth.parquet").with_columns(pl.lit(fmt).alias("format")))
        for extra in logs.glob(f"{name}.truth.*"):
            extra.rename(logs.parent / f"{logs.name}-{extra.name}")  # keep the directory to the logs alone
    return logs, pl.concat(truths)


def test_one_ingest_of_a_mixed_directory_traces_every_format(mixed: tuple[Path, pl.DataFrame], tmp_path: Path) -> None:
    logs, truth = mixed
    store = tmp_path / "store"
    r = CliRunner()
    res = r.invoke(cli, ["ingest", "--store", str(store), "--timezone", "UTC", "--year", "2026",
                         "--host", "mx1.example.org", str(logs)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("Ingested 4 files, ") and "(0 unknown)" in res.stdout
    res = r.invoke(cli, ["trace", "--store", str(store), "--start-date", "2026-05-31", "--end-date", "2026-06-03",
                         "--now", "2026-06-03", "--timezone", "UTC", "--page-size", "5000", "--output", "json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    got = pl.DataFrame(json.loads(res.stdout)).select(COLUMNS)
    got = got.with_columns(pl.col("Received").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC"))
    want = truth.select(COLUMNS).with_columns(pl.col("Received").dt.truncate("1s"))
    got = got.with_columns(pl.col("Received").dt.truncate("1s"), pl.col("Size").cast(pl.Int64))
    want = T.sort(want.with_columns(pl.col("Size").cast(pl.Int64)))
    missing = want.join(got, on=COLUMNS, how="anti", nulls_equal=True)
    extra = got.join(want, on=COLUMNS, how="anti", nulls_equal=True)
    assert missing.height == 0 and extra.height == 0, f"missing:\n{missing}\nextra:\n{extra}"
    assert got.height == want.height
    for fmt in FILES:  # every format contributed rows of several statuses
        assert truth.filter(pl.col("format") == fmt).get_column("Status").n_unique() >= 3
