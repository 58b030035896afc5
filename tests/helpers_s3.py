"""An S3 emulator for the tests: moto's ThreadedMotoServer on 127.0.0.1, one fresh bucket per test;
and the CLI run as the writers and readers of a shared store run it (a process each).

The standard AWS settings point at it through the environment (monkeypatched per test, and so
inherited by the msgtrace processes a test starts): nothing leaves the machine. Requests are
counted with moto's own recorder (/moto-api/recorder/...), which sees every client's requests,
Polars' reads included.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

REGION = "us-east-1"
KEY_ID, SECRET = "testing-key", "testing-secret"


@dataclass
class Emulator:
    """A running moto server."""

    url: str

    def env(self) -> dict[str, str]:
        """The AWS settings that point a client at it."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }

    def create_bucket(self) -> str:
        import boto3

        name = f"msgtrace-{secrets.token_hex(4)}"
        client = boto3.client(
            "s3", endpoint_url=self.url, region_name=REGION, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET
        )
        client.create_bucket(Bucket=name)
        return name

    def _api(self, what: str) -> bytes:
        req = urllib.request.Request(
            f"{self.url}/moto-api/recorder/{what}", method="GET" if what.startswith("download") else "POST"
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.read()

    def start_recording(self) -> None:
        self._api("reset-recording")
        self._api("start-recording")

    def stop_recording(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, key path, query) of each request since start_recording (bucket-relative path)."""
        self._api("stop-recording")
        out = []
        for line in self._api("download-recording").decode().splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            url = urlsplit(entry.get("url", ""))
            query = dict(pair.split("=", 1) if "=" in pair else (pair, "") for pair in url.query.split("&") if pair)
            out.append((entry.get("method", ""), unquote(url.path), {k: unquote(v) for k, v in query.items()}))
        return out


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One moto server for the session, bound to 127.0.0.1 on a free port."""
    # the recorder (off until a test starts it) keeps its log here, not in the working directory
    os.environ.setdefault("MOTO_RECORDER_FILEPATH", str(tmp_path_factory.mktemp("moto") / "recording.jsonl"))
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield Emulator(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_store(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A store location in a new, empty bucket, with the AWS settings in the environment."""
    for k, v in emulator.env().items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(k, raising=False)
    return f"s3://{emulator.create_bucket()}/store"


def cli(*args: str, now: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a process of its own (as a user would), with the test's environment."""
    env = {**os.environ, "MSGTRACE_NOW": now}
    res = subprocess.run(
        [sys.executable, "-m", "msgtrace", *args], capture_output=True, text=True, env=env, timeout=900
    )
    if check:
        assert res.returncode == 0, res.stderr
    return res


def generate_log(path: Path, host: str, seed: int, lines: int, days: float = 3.0) -> list[str]:
    """`msgtrace generate` of one MTA's Postfix log from 2026-01-01 on; its lines."""
    args = ["--lines", str(lines), "--start", "2026-01-01", "--days", str(days), "--host", host, "--seed", str(seed)]
    cli("generate", *args, str(path), now="2026-01-01T00:00:00Z")
    return path.read_text().splitlines(keepends=True)
