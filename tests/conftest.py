"""Shared fixtures: the read-only shared corpus, golden-file updating."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files from current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture
def corpus() -> Path:
    """The shared corpus; where it is absent a skip, or a failure when MSGTRACE_REQUIRE_CORPUS=1
    (CI sets it in .ci/run: a missing corpus must not pass as green)."""
    if not CORPUS.is_dir():
        if os.environ.get("MSGTRACE_REQUIRE_CORPUS") == "1":
            pytest.fail(f"shared corpus missing at {CORPUS} (MSGTRACE_REQUIRE_CORPUS=1)")
        pytest.skip("shared corpus not present (../shared/corpus)")
    return CORPUS


@pytest.fixture(autouse=True)
def restore_msgtrace_logger() -> Iterator[None]:
    """The CLI configures the `msgtrace` logger (level, handler); no test may leave it changed for the next."""
    logger = logging.getLogger("msgtrace")
    saved = (logger.level, list(logger.handlers), logger.propagate)
    yield
    logger.setLevel(saved[0])
    logger.handlers[:] = saved[1]
    logger.propagate = saved[2]


# the S3 emulator's fixtures (emulator, s3_store), for every test module that asks for them
from tests.helpers_s3 import emulator, s3_store  # noqa: E402, F401

# The writer every CLI ingest, watch and compact of the tests is (--writer defaults to the host
# name, which differs between machines and would name the files the tests look at).
TEST_WRITER = "mx-test"


os.environ["MSGTRACE_WRITER"] = TEST_WRITER  # for every fixture too, whatever its scope


@pytest.fixture
def writer_name() -> str:
    """The writer the CLI is in the tests ($MSGTRACE_WRITER; a test of the host-name default removes it)."""
    return TEST_WRITER
