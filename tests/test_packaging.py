"""msgtrace installs as one namespace: msgtrace, msgtrace.ingest (from ingest/), msgtrace.query (from
query/), with no generic top-level `ingest` or `query` in site-packages."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT

MAPPED = {"msgtrace": "msgtrace", "msgtrace.ingest": "ingest", "msgtrace.query": "query"}


def _declared() -> tuple[set[str], dict[str, str]]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(conf["packages"]), conf.get("package-dir", {})


def test_every_package_folder_is_declared() -> None:
    """A new subpackage left out of pyproject.toml would be missing from a non-editable install."""
    packages, package_dir = _declared()
    assert {k: v for k, v in MAPPED.items() if k != "msgtrace"} == package_dir
    found = set()
    for name, folder in MAPPED.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    assert found == packages


def test_installed_names_outside_the_checkout(tmp_path: Path) -> None:
    """From another directory only the msgtrace names import: the old top-level ones are gone."""
    code = (
        "import importlib.util as u, msgtrace.ingest.pipeline, msgtrace.query.engine, msgtrace.generate;"
        "from msgtrace import message_trace, message_trace_lazy, status_counts;"
        "print(u.find_spec('ingest') is None, u.find_spec('query') is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_public_api_has_explicit_keyword_only_parameters() -> None:
    import inspect

    import msgtrace

    for fn in (msgtrace.message_trace, msgtrace.message_trace_lazy, msgtrace.status_counts):
        params = inspect.signature(fn).parameters.values()
        assert not [p for p in params if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)], fn.__name__
        assert [p.name for p in params if p.kind is not p.KEYWORD_ONLY] == ["store"]
        assert {"start_date", "sender_address", "recipient_address", "status", "max_age_days"} <= {
            p.name for p in params
        }
