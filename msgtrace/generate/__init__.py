"""`msgtrace generate`: seeded, realistic mail logs of any size with the trace rows they must give.

    from msgtrace.generate import generate
    summary = generate("postfix", Path("mail.log"), lines=100_000, start="2026-12-31", days=2)

writes mail.log and, beside it, mail.log.truth.parquet (plus mail.log.truth.jsonl when small).
The model (model.py) is format-independent; one writer per format renders it (postfix.py, ...),
truth.py renders the rows `msgtrace trace` must return.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import polars as pl

from msgtrace.generate import model as M
from msgtrace.generate import truth as expected

FORMATS = ("postfix", "exim", "sendmail", "exchange")
JSONL_MAX_ROWS = 10_000
END_SLACK_US = 500_000


@dataclass
class Summary:
    """What one run wrote."""

    path: Path
    truth_path: Path
    lines: int
    messages: int
    rows: int


def writer(fmt: str) -> ModuleType:
    """The writer module of a format."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    import importlib

    return importlib.import_module(f"msgtrace.generate.{fmt}")


def window(start: str, days: float, tz: str) -> tuple[int, int]:
    """[start, start + days) as UTC microseconds; start is an ISO date or datetime, local to tz."""
    when = dt.datetime.fromisoformat(start)
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    s = int(when.timestamp() * 1_000_000)
    return s, s + int(days * 86400 * 1_000_000)


def build(
    fmt: str,
    lines: int,
    start: str = "2026-01-01",
    days: float = 1,
    tz: str = "UTC",
    seed: int = 1,
    host: str = "mx1.example.org",
    **options: object,
) -> tuple[M.Model, pl.DataFrame]:
    """The model and its rendered lines, cut at the first message boundary past `lines`."""
    w = writer(fmt)
    s, e = window(start, days, tz)
    cfg = M.Config(start_us=s, end_us=e, host=host, seed=seed, features=w.FEATURES)
    pilot_n = min(max(lines // 10, 300), 20_000)
    pilot = w.render(M.simulate(cfg, pilot_n), **options)
    per_msg = max(pilot.height / pilot_n, 1.0)
    n = int(lines / per_msg * 1.02) + 5
    mdl = M.simulate(cfg, n)
    out = w.render(mdl, **options)
    for _ in range(3):  # the pilot guessed low: more arrivals over the same window
        if out.height >= lines:
            break
        n = int(n * lines / max(out.height, 1) * 1.05) + 5
        mdl = M.simulate(cfg, n)
        out = w.render(mdl, **options)
    if out.height <= lines:
        return mdl, out
    # the log ends just after the first message past `lines` arrived: its deliveries are not logged yet
    t_n = out.get_column("t").sort()[lines - 1]
    t0 = mdl.msgs.filter(pl.col("kind") != M.DSN).get_column("t0")
    k = int(t0.search_sorted(t_n, side="right"))
    if k >= t0.len():
        return mdl, out
    mdl = mdl.clip(k + 1, min(int(t0[k]) + END_SLACK_US, cfg.end_us))
    return mdl, w.render(mdl, **options)


def generate(
    fmt: str,
    out: Path,
    lines: int = 10_000,
    start: str = "2026-01-01",
    days: float = 1,
    tz: str = "UTC",
    seed: int = 1,
    host: str = "mx1.example.org",
    **options: object,
) -> Summary:
    """Write a log of about `lines` lines and its ground truth beside it."""
    w = writer(fmt)
    mdl, rendered = build(fmt, lines, start, days, tz, seed, host, **options)
    n = w.write(rendered, Path(out), mdl, tz)
    rows = expected.truth(mdl, w.RULES)
    tpath = Path(f"{out}.truth.parquet")
    rows.write_parquet(tpath)
    jpath = Path(f"{out}.truth.jsonl")
    if rows.height <= JSONL_MAX_ROWS:
        text = rows.with_columns(pl.col("Received").dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"))
        jpath.write_text("".join(json.dumps(r) + "\n" for r in text.iter_rows(named=True)))
    elif jpath.exists():
        jpath.unlink()
    return Summary(Path(out), tpath, n, mdl.msgs.height, rows.height)
