"""bench section 4 (`msgtrace report` over a month) runs against a store and times what it says."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bench.run import bench_report
from msgtrace.api import status_counts
from tests.helpers_generated import generated_store


@pytest.mark.slow
def test_bench_report_section_runs_on_a_small_store(tmp_path: Path) -> None:
    store = generated_store(tmp_path, lines=1500)
    results: dict = {}
    bench_report(store, results, days=4, start=dt.date(2026, 5, 31))
    rep = results["report"]
    counts = status_counts(store, start_date="2026-05-31", end_date="2026-06-04", timezone="UTC", max_age_days=0)
    assert rep["rows"] == counts["Count"].sum() > 0
    assert rep["days"] == 4 and 0 < rep["in_process_s"] and 0 < rep["cli_s"]


@pytest.mark.slow
def test_bench_follow_runs_on_a_small_store(tmp_path: Path) -> None:
    from bench.run import bench_follow

    store = generated_store(tmp_path, lines=1500)
    results: dict = {}
    bench_follow(store, dt.date(2026, 6, 1), "nobody@example.org", results)
    assert results["follow"]["window"]["rows"] > 0 and results["follow"]["b"]["rows"] == 0
    assert all(0 < m["plain_s"] and 0 < m["follow_s"] for m in results["follow"].values())


@pytest.mark.slow
def test_bench_watch_finds_every_probe_idle_and_busy(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from msgtrace.generate import generate

    log = tmp_path / "postfix.log"
    generate("postfix", log, lines=30_000, start="2026-05-01", days=1, tz="UTC", seed=3)
    cmd = [sys.executable, "-m", "bench.watch", str(log), "--prefill", "5000", "--probes", "2", "--rate", "1000"]
    out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
    for phase in ("idle", "busy"):
        assert out[phase]["probes"] == 2 and 0 < out[phase]["median_s"] <= out[phase]["max_s"] < 60
    assert out["busy"]["lines_per_s"] > 0
