"""The store is one interface: nothing outside msgtrace.store touches its files but through `Store` / `Table`.

Generations, the `msgtrace.deletes` footers, status counts and compaction are the business of
msgtrace/store/table.py alone (over msgtrace/store/files.py and the file system in
msgtrace/store/fs.py); every other module reads and writes the store through `Store` and its
tables, so a rule of the file protocol changes in one place and an object-storage backend plugs
in below `Table`. Checked by reading every module's imports and calls with `ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

CODE_DIRS = ["msgtrace", "ingest", "query", "bench", "tests"]
STORE_DIR = ROOT / "msgtrace" / "store"
# the store's internals, and the modules this refactor removed (no shim may come back)
INTERNAL = {"msgtrace.store.files", "msgtrace.store.fs", "msgtrace.ingest.layout", "msgtrace.ingest.store"}
# inside the store package: who may use the file protocol and the file system
ALLOWED_INSIDE = {
    "msgtrace.store.files": {"table.py"},
    "msgtrace.store.fs": {"table.py", "files.py"},
}
# tests of the internals themselves, or that build what the writers no longer write (files of
# older versions, damaged files): which internal module each may use
TEST_INTERNALS = {
    "tests/helpers_store.py": {"msgtrace.store.files"},
    "tests/test_summary.py": {"msgtrace.store.files"},  # the footer format
    "tests/test_store.py": {"msgtrace.store.fs"},  # the file system layer
}
PARQUET_CALLS = {"scan_parquet", "read_parquet", "read_parquet_metadata", "write_parquet", "sink_parquet"}
# Parquet that is not a store file, each with why
PARQUET_ELSEWHERE = {
    "msgtrace/generate/__init__.py": "the ground truth written beside a generated log",
    "query/output.py": "`msgtrace trace --output parquet --out FILE`",
    "bench/events_write.py": "copies of a store's events written with other Parquet options, beside the store's own",
}


def modules() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py") if "fixtures" not in p.parts)


def imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import, `from a import b` also as `a.b` (b may be a submodule)."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def violations(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    inside = path.parent == STORE_DIR
    out = []
    for line, name in imported(tree):
        if inside:
            if name in ALLOWED_INSIDE and path.name not in ALLOWED_INSIDE[name]:
                out.append(f"{rel}:{line} imports {name}")
        elif name in INTERNAL and name not in TEST_INTERNALS.get(rel, set()):
            out.append(f"{rel}:{line} imports {name}: use msgtrace.store (Store, Table)")
        elif name.startswith("pyarrow.parquet") and not rel.startswith("tests/") and rel not in PARQUET_ELSEWHERE:
            out.append(f"{rel}:{line} imports {name}: store files are read and written by msgtrace.store")
    if not inside and not rel.startswith("tests/") and rel not in PARQUET_ELSEWHERE:
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PARQUET_CALLS:
                out.append(f"{rel}:{node.lineno} calls {node.func.attr}: read the store through Store / Table")
    return out


def test_only_the_store_package_touches_store_files() -> None:
    found = [v for p in modules() for v in violations(p)]
    assert found == []


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("query/x.py", "from msgtrace.store import files\n", "imports msgtrace.store.files"),
        ("query/x.py", "import msgtrace.store.fs as fs\n", "imports msgtrace.store.fs"),
        ("ingest/x.py", "from msgtrace.ingest.layout import current_files\n", "imports msgtrace.ingest.layout"),
        ("query/x.py", "import polars as pl\npl.scan_parquet('s/events/*/*.parquet')\n", "calls scan_parquet"),
        ("ingest/x.py", "def f(df):\n    df.write_parquet('x')\n", "calls write_parquet"),
        ("ingest/x.py", "import pyarrow.parquet as pq\n", "imports pyarrow.parquet"),
        ("msgtrace/store/lock.py", "from msgtrace.store import files\n", "imports msgtrace.store.files"),
    ],
)
def test_the_check_finds_each_way_around(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str, source: str, expected: str
) -> None:
    """The check is not vacuous: each way of reaching past Store is reported."""
    fake_root = tmp_path
    path = fake_root / rel
    path.parent.mkdir(parents=True)
    path.write_text(source)
    monkeypatch.setattr(f"{__name__}.ROOT", fake_root)
    monkeypatch.setattr(f"{__name__}.STORE_DIR", fake_root / "msgtrace" / "store")
    assert any(expected in v for v in violations(path)), violations(path)
