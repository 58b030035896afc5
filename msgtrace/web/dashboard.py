"""The dashboard's figures: counts per status over 24 h / 7 d / 30 d, mail per hour, top senders,
recipients, domains and reasons, and the watcher's state (what `msgtrace status` reports).

Every figure adds up over sets of rows that share no message, so each range is built as
`msgtrace report` builds one (query.report_store): the UTC days it covers whole from their
counts, the days it cuts (its first day, and today) from their rows. A whole day's counts are
the ones `msgtrace compact` or the watcher stored, or, when they are missing or out of date,
counted from its rows once and kept in this process's memory (the web never writes the store),
both keyed by what they were made from (the partition's current files, the local domains): a
flush or a compaction makes the day count again. A range other than the one shown needs only
its counts per status; for a whole day this process has not counted, those come from the
files' footers (query.summary), as `msgtrace summary` counts them. The figures therefore always
equal those of a scan of the range's rows.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath

import polars as pl

from msgtrace.ingest.schema import STATUSES
from msgtrace.ingest.status import StoreStatus, status
from msgtrace.query import engine
from msgtrace.query import report as R
from msgtrace.query import report_store as RS
from msgtrace.query.direction import store_local_domains
from msgtrace.query.filters import TraceFilter
from msgtrace.query.summary import day_status_counts, row_counts
from msgtrace.store import Store

# The ranges the dashboard shows: label -> hours back from now.
RANGES: dict[str, int] = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}
RANGE_LABELS = {"24h": "last 24 hours", "7d": "last 7 days", "30d": "last 30 days"}
TOP = 10


@dataclass(frozen=True)
class Dashboard:
    now: dt.datetime
    range: str
    counts: dict[str, dict[str, int]]  # range -> status -> rows
    statuses: list[str]  # the statuses present in any range, in the contract's order
    hourly: pl.DataFrame  # hour (in the dashboard's zone), Status, Count
    tops: dict[str, list[tuple[str, int]]]  # title -> (value, rows)
    store: StoreStatus


# the tables of a report partial the dashboard shows (query.report.partial)
TABLES = ("status", "minute_status", "sender", "recipient", "deferral", "bounce")


def _midnight(t: dt.datetime) -> dt.datetime:
    u = t.astimezone(dt.UTC)
    return dt.datetime(u.year, u.month, u.day, tzinfo=dt.UTC)


def split(start: dt.datetime, end: dt.datetime) -> tuple[list[dt.date], list[tuple[dt.datetime, dt.datetime]]]:
    """The UTC days [start, end) covers whole, and the pieces of the days it cuts."""
    first = _midnight(start)
    if first < start:
        first += dt.timedelta(days=1)
    last = _midnight(end)
    if last < first:  # within one day
        return [], [(start, end)]
    days = [(first + dt.timedelta(days=i)).date() for i in range((last - first).days)]
    cuts = [(a, b) for a, b in ((start, first), (last, end)) if a < b]
    return days, cuts


class DayCounts:
    """Whole days' partials (TABLES) of one store, kept in memory by what they were made from."""

    LIMIT = 128  # days kept (a month is 31)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._days: dict[tuple[str, dt.date], tuple[str, R.Partial]] = {}
        self._merged: dict[tuple[object, ...], Whole] = {}
        self._statuses: dict[tuple[str, dt.date], tuple[str, Counter[str]]] = {}

    def key(self, st: Store, day: dt.date, domains: tuple[str, ...]) -> str:
        """What a day's partial is made from now (its partition's current files, the local domains)."""
        return RS.made_from(st.messages, day, domains)

    def known(self, root: PurePath, day: dt.date, made_from: str) -> R.Partial | None:
        with self._lock:
            hit = self._days.get((str(root), day))
        return hit[1] if hit is not None and hit[0] == made_from else None

    def get(self, st: Store, day: dt.date, domains: tuple[str, ...], made_from: str) -> R.Partial:
        """A whole day's partial: kept, stored (if current) or counted from its rows."""
        found = self.known(st.root, day, made_from)
        if found is not None:
            return found
        found = RS.stored_partial(st, st.messages, day, domains, TABLES)
        if found is None:
            start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
            flt = TraceFilter.from_params(start_date=start, end_date=start + dt.timedelta(days=1), max_age_days=0)
            found = RS.from_rows(st.root, st.messages.current_files(day), flt, TABLES)
        with self._lock:
            if len(self._days) >= self.LIMIT:
                self._days.clear()
            self._days[(str(st.root), day)] = (made_from, found)
        return found

    def statuses(self, st: Store, day: dt.date, made_from: str) -> Counter[str]:
        """A whole day's rows per status from its files' footers (query.summary), kept like its partial."""
        with self._lock:
            hit = self._statuses.get((str(st.root), day))
        if hit is not None and hit[0] == made_from:
            return hit[1]
        found = Counter({_label(k): n for k, n in day_status_counts(st.messages, [day]).items()})
        with self._lock:
            if len(self._statuses) >= self.LIMIT:
                self._statuses.clear()
            self._statuses[(str(st.root), day)] = (made_from, found)
        return found

    def merged(self, key: tuple[object, ...], parts: list[R.Partial]) -> Whole:
        """The merge of these whole days' partials (`key` names them and what they were made from)."""
        with self._lock:
            hit = self._merged.get(key)
        if hit is not None:
            return hit
        merged = Whole(R.merge(parts))
        with self._lock:
            if len(self._merged) >= 8:
                self._merged.clear()
            self._merged[key] = merged
        return merged


DAY_COUNTS = DayCounts()  # shared by the requests of this process


def _label(status: str | None) -> str:
    return status if status is not None else "(no status)"


def _status_counts(frame: pl.DataFrame) -> Counter[str]:
    return Counter({_label(s): int(n) for s, n in frame.select("Status", "Rows").iter_rows()})


def _domain(col: str) -> pl.Expr:
    return pl.col(col).str.split("@").list.last()


def _has_at(col: str) -> pl.Expr:
    return pl.col(col).str.contains("@", literal=True)


# Each top list: the partial's table, which of its rows, and the value they are ranked by.
TOPS: dict[str, tuple[str, pl.Expr | None, pl.Expr]] = {
    "Top senders": ("sender", None, R.address(pl.col("Address"))),
    "Top recipients": ("recipient", None, pl.col("Address").fill_null("")),
    "Top sender domains": ("sender", _has_at("Address"), _domain("Address")),
    "Top recipient domains": ("recipient", _has_at("Address"), _domain("Address")),
    # the report's reasons: the same answer about different recipients is one line
    "Top deferral reasons": ("deferral", None, pl.col("Reason")),
    "Top bounce reasons": ("bounce", None, pl.col("Reason")),
}


def _by_rows(df: pl.DataFrame) -> pl.DataFrame:
    """Most rows first, ties by value."""
    return df.sort(["Rows", "value"], descending=[True, False])


def ranked(p: R.Partial) -> dict[str, pl.DataFrame]:
    """Rows per value of every top list, most first (ties by value)."""
    out = {}
    for title, (table, which, value) in TOPS.items():
        df = p[table] if which is None else p[table].filter(which)
        out[title] = _by_rows(df.group_by(value.alias("value")).agg(pl.col("Rows").sum()))
    return out


def hours(p: R.Partial, zone: str) -> pl.DataFrame:
    """Rows per hour of the zone and status."""
    return (
        p["minute_status"]
        .group_by(pl.col("Minute").dt.convert_time_zone(zone).dt.truncate("1h").alias("hour"), "Status")
        .agg(pl.col("Rows").sum().alias("Count"))
    )


def top_of_sum(whole: pl.DataFrame, cut: pl.DataFrame) -> pl.DataFrame:
    """The TOP values of whole + cut (both ranked): exact from whole's TOP and cut's values, since
    a value in neither has at most its whole count, which TOP values of whole reach or pass."""
    if cut.is_empty():
        return whole.head(TOP)
    values = pl.concat([whole.head(TOP).select("value"), cut.select("value")]).unique()
    both = values.join(whole, on="value", how="left", nulls_equal=True).join(
        cut, on="value", how="left", suffix="_cut", nulls_equal=True
    )
    total = pl.col("Rows").fill_null(0) + pl.col("Rows_cut").fill_null(0)
    return _by_rows(both.select("value", total.alias("Rows"))).head(TOP)


class Whole:
    """The merged partial of a range's whole days, with its top lists and hours made once."""

    def __init__(self, p: R.Partial) -> None:
        self.partial = p
        self.ranked = ranked(p)
        self._hours: dict[str, pl.DataFrame] = {}

    def hours(self, zone: str) -> pl.DataFrame:
        if zone not in self._hours:
            self._hours[zone] = hours(self.partial, zone)
        return self._hours[zone]


def figures(
    whole: Whole | None, cut: R.Partial | None, zone: str
) -> tuple[pl.DataFrame, dict[str, list[tuple[str, int]]]]:
    """Mail per hour (of the zone) by status, and the top lists, of a range: its whole days and its cut ones."""
    parts = [f for f in (whole.hours(zone) if whole else None, hours(cut, zone) if cut else None) if f is not None]
    hourly = pl.concat(parts).group_by("hour", "Status").agg(pl.col("Count").sum()).sort("hour", "Status")
    cut_ranked = ranked(cut) if cut is not None else None
    tops = {}
    for title in TOPS:
        if whole is None or cut_ranked is None:
            frame = (whole.ranked if whole is not None else cut_ranked or {})[title].head(TOP)
        else:
            frame = top_of_sum(whole.ranked[title], cut_ranked[title])
        tops[title] = [(str(v), int(n)) for v, n in frame.iter_rows()]
    return hourly, tops


def build(
    store: Path,
    now: dt.datetime,
    range_name: str,
    store_status: StoreStatus | None = None,
    zone: str = "UTC",
    day_counts: DayCounts = DAY_COUNTS,
) -> Dashboard:
    """Every figure of the dashboard at `now`, hours in `zone` (a Polars time zone);
    store_status: `msgtrace status`'s report when the caller has it."""
    st = Store(store)
    domains = store_local_domains(store)
    present = set(st.messages.days())
    made_from: dict[dt.date, str] = {}

    def key(day: dt.date) -> str:
        if day not in made_from:
            made_from[day] = day_counts.key(st, day, domains)
        return made_from[day]

    cut: dict[tuple[dt.datetime, dt.datetime, tuple[str, ...]], R.Partial] = {}

    def rows(a: dt.datetime, b: dt.datetime, tables: tuple[str, ...]) -> R.Partial:
        if (a, b, tables) in cut:  # today: a piece of every range
            return cut[(a, b, tables)]
        files = st.messages.files([a.astimezone(dt.UTC).date()])
        flt = TraceFilter.from_params(start_date=a, end_date=b, now=now, max_age_days=0)
        cut[(a, b, tables)] = RS.from_rows(store, files, flt, tables) if files else RS.empty(TABLES)
        return cut[(a, b, tables)]

    def statuses(a: dt.datetime, b: dt.datetime) -> Counter[str]:
        """Rows per status of a cut day's piece: from the shown range's partial of it, or its status column alone."""
        if (a, b, TABLES) in cut:
            return _status_counts(cut[(a, b, TABLES)]["status"])
        flt = TraceFilter.from_params(start_date=a, end_date=b, now=now, max_age_days=0)
        day = st.messages.files([a.astimezone(dt.UTC).date()])
        return Counter({_label(k): n for k, n in row_counts(engine.filtered(store, day, flt)).items()})

    counts: dict[str, dict[str, int]] = {}
    shown: tuple[Whole | None, R.Partial | None] = (None, None)
    # the shown range first: its whole days' partials are then known to the other ranges
    for name in sorted(RANGES, key=lambda n: n != range_name):
        days, cuts = split(now - dt.timedelta(hours=RANGES[name]), now)
        days = [d for d in days if d in present]
        if name == range_name:
            whole = (
                day_counts.merged(
                    (str(store), *((d, key(d)) for d in days)), [day_counts.get(st, d, domains, key(d)) for d in days]
                )
                if days
                else None
            )
            cuts_made = [rows(a, b, TABLES) for a, b in cuts]
            cut_part = R.merge(cuts_made) if cuts_made else None
            if whole is None and cut_part is None:  # nothing in the range: the tables, empty
                cut_part = RS.empty(TABLES)
            shown = (whole, cut_part)
            total: Counter[str] = Counter()
            for part in (whole.partial if whole else None, cut_part):
                if part is not None:
                    total.update(_status_counts(part["status"]))
        else:
            total = Counter()
            footers: list[dt.date] = []
            for d in days:
                known = day_counts.known(store, d, key(d))
                if known is not None:
                    total.update(_status_counts(known["status"]))
                else:
                    footers.append(d)
            for d in footers:
                total.update(day_counts.statuses(st, d, key(d)))
            for a, b in cuts:
                total.update(statuses(a, b))
        counts[name] = {s: n for s, n in total.items() if n}
    order = list(dict.fromkeys(s for name in RANGES for s in counts[name]))
    order.sort(key=lambda s: STATUSES.index(s) if s in STATUSES else len(STATUSES))
    counts = {name: counts[name] for name in RANGES}
    hourly, tops = figures(*shown, zone)
    return Dashboard(now, range_name, counts, order, hourly, tops, store_status or status(store))
