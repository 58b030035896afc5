"""A store for the web tests: the demo logs (data/sample), the next hop of one of
its messages on another server (tests/fixtures/web/mx2.log), and a message whose subject, addresses,
Message-ID and reply carry HTML/script payloads (tests/fixtures/web/hostile.log), ingested by the CLI."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from msgtrace.query.cli import cli
from tests.conftest import FIXTURES, ROOT

NOW = "2026-06-14T12:00:00Z"
WINDOW = {"start_date": "2026-06-12", "end_date": "2026-06-14T12:00:00Z"}
HOSTILE_LOG = FIXTURES / "web" / "hostile.log"
# The next hop of bob's message (Message-ID f7a2b9c4-...): the receiving server's own log.
NEXT_HOP_LOG = FIXTURES / "web" / "mx2.log"
# What the hostile message's fields set if a browser ever ran them.
PAYLOAD_FLAG = "__xss"


def build_store(store: Path) -> Path:
    """Ingest the demo logs and the hostile log into store (as `make demo` does, plus one message)."""
    result = CliRunner().invoke(
        cli,
        [
            "ingest",
            "--store",
            str(store),
            "--timezone",
            "UTC",
            "--year",
            "2026",
            str(ROOT / "data" / "sample"),
            str(HOSTILE_LOG),
            str(NEXT_HOP_LOG),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return store


# --- a real server and a real browser (the Playwright tests and docs/make_screenshots.py) ---

CHROMIUM = "/usr/bin/chromium"
# Debian's Chromium, headless, with nothing that reaches out (updates, sync, QUIC, first-run pages).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run app under uvicorn on 127.0.0.1 on a free port in a thread; yield its URL; stop it."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no race with another test
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def chromium(user_data_dir: Path, javascript: bool = True) -> Iterator[Any]:
    """A Playwright browser context of Debian's Chromium with a fresh profile (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            java_script_enabled=javascript,
            viewport={"width": 1400, "height": 1000},
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()
