"""`msgtrace web`'s HTTP API through Starlette's TestClient: every parameter answers what the CLI
prints for the same options, every error is HTTP 400 with the CLI's message; security headers,
read-only routes, static files, HTTP Basic, `web-user add`, the loopback rule."""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from msgtrace.cli import cli
from msgtrace.web.app import CSP, create_app
from msgtrace.web.auth import Authenticator, hash_password, read_users, verify_password
from msgtrace.web.params import Defaults
from tests.helpers_web import NOW, WINDOW, build_store

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note about httpx versions
    from starlette.testclient import TestClient


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("web") / "store")


@pytest.fixture(scope="module")
def client(store: Path) -> Iterator[TestClient]:
    app = create_app(store, defaults=Defaults(now=NOW, timezone="UTC"))
    with TestClient(app) as c:
        yield c


def cli_run(*args: str) -> Result:
    env = {"MSGTRACE_NOW": NOW, "MSGTRACE_TZ": "UTC", "MSGTRACE_STORE": None, "COLUMNS": "200"}
    return CliRunner(env=env).invoke(cli, list(args), catch_exceptions=False)


def cli_options(params: dict[str, Any]) -> list[str]:
    """The CLI options of API parameters: sender_address=[a, b] -> --sender-address a,b."""
    out: list[str] = []
    for name, value in params.items():
        out += ["--" + name.replace("_", "-"), ",".join(value) if isinstance(value, list) else str(value)]
    return out


def cli_json(store: Path, command: str, params: dict[str, Any]) -> Any:
    result = cli_run(command, "--store", str(store), *cli_options(params), "--output", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def first_failed(client: TestClient) -> dict[str, Any]:
    rows = client.get("/api/v1/trace", params={**WINDOW, "status": "Failed"}).json()["rows"]
    return next(r for r in rows if r["RecipientAddress"] == "oscar@example.net")


# Every trace parameter at least once, alone or combined, V1 and V2 paging.
TRACE_CASES: list[dict[str, Any]] = [
    {},
    WINDOW,
    {**WINDOW, "sender_address": ["alice@example.com"]},
    {**WINDOW, "sender_address": ["*@example.org", "<>"]},
    {**WINDOW, "recipient_address": ["*@example.org"], "status": ["Delivered", "Failed"]},
    {**WINDOW, "status": ["failed"]},
    {**WINDOW, "message_id": ["CAF2x9Qk=invoice.1187@mail.example.net"]},
    {**WINDOW, "from_ip": "2001:db8:10:0::5"},
    {**WINDOW, "to_ip": "198.51.100.25"},
    {**WINDOW, "subject": "invoice"},
    {**WINDOW, "subject": "example.org", "subject_filter_type": "EndsWith"},
    {**WINDOW, "direction": ["Inbound"]},
    {**WINDOW, "direction": ["outbound", "Local"], "status": ["Delivered"]},
    {**WINDOW, "page": 2, "page_size": 5},
    {**WINDOW, "page_size": 3},
    {**WINDOW, "result_size": 4},
    {"start_date": "06/12/2026", "end_date": "06/14/2026 9:00 AM", "timezone": "Europe/Paris"},
    {"start_date": "2026-06-01", "end_date": "2026-06-14", "max_age_days": 0},
    {"start_date": "2026-06-13T10:00:00", "end_date": "2026-06-13T12:00:00", "now": "2026-06-13T18:00:00Z"},
]


@pytest.mark.parametrize("params", TRACE_CASES, ids=lambda p: ",".join(p) or "defaults")
def test_trace_rows_are_what_the_cli_prints_as_json(store: Path, client: TestClient, params: dict[str, Any]) -> None:
    answer = client.get("/api/v1/trace", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == cli_json(store, "trace", params)
    assert answer.json()["rows"], "each case must find rows, or it compares nothing"


def test_trace_v1_paging_fields(client: TestClient) -> None:
    body = client.get("/api/v1/trace", params={**WINDOW, "page": 2, "page_size": 10}).json()
    everything = client.get("/api/v1/trace", params=WINDOW).json()
    assert body["total"] == everything["total"] == len(everything["rows"]) > 20
    assert (body["page"], body["page_size"], body["pages"]) == (2, 10, -(-body["total"] // 10))
    assert body["rows"] == everything["rows"][10:20]
    assert (body["start_date"], body["end_date"]) == ("2026-06-12T00:00:00Z", "2026-06-14T12:00:00Z")


def test_trace_v2_next_walks_the_whole_result_like_the_cli_cursor(client: TestClient) -> None:
    everything = client.get("/api/v1/trace", params=WINDOW).json()["rows"]
    params: dict[str, Any] = {**WINDOW, "result_size": 4}
    seen: list[dict[str, Any]] = []
    for _ in range(50):
        body = client.get("/api/v1/trace", params=params).json()
        seen += body["rows"]
        if not body["more"]:
            assert body["next"] is None
            break
        params = body["next"]
    key = [(r["MessageTraceId"], r["RecipientAddress"]) for r in seen]
    assert key == [(r["MessageTraceId"], r["RecipientAddress"]) for r in everything]


@pytest.mark.parametrize("one_recipient", [True, False], ids=["one recipient", "every recipient"])
def test_detail_events_are_what_the_cli_prints_as_json(store: Path, client: TestClient, one_recipient: bool) -> None:
    row = first_failed(client)
    params = {**WINDOW, "message_trace_id": row["MessageTraceId"]}
    if one_recipient:
        params["recipient_address"] = row["RecipientAddress"]
    answer = client.get("/api/v1/detail", params=params)
    assert answer.status_code == 200, answer.text
    events = answer.json()["events"]
    assert events == cli_json(store, "detail", params)
    assert any("Mailbox full" in e["Detail"] for e in events)
    recipients = {e["RecipientAddress"] for e in events}
    assert ("nina@example.com" in recipients) is not one_recipient


@pytest.mark.parametrize(
    "params",
    [
        WINDOW,
        {**WINDOW, "sender_address": ["*@example.com"], "status": ["Delivered", "None"]},
        {**WINDOW, "direction": ["Outbound"]},
        {},
    ],
)
def test_summary_counts_are_what_the_cli_prints_as_json(store: Path, client: TestClient, params: dict) -> None:
    answer = client.get("/api/v1/summary", params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"] == cli_json(store, "summary", params)


TRACE_ERRORS: list[dict[str, Any]] = [
    {"start_date": "yesterday"},
    {"end_date": "13/13/2026"},
    {"start_date": "2026-06-14", "end_date": "2026-06-12"},
    {"start_date": "2026-05-01"},
    {"max_age_days": -1},
    {"status": "Lost"},
    {"direction": "Sideways"},
    {"sender_address": "a*b@example.com"},
    {"message_trace_id": "not-a-guid"},
    {"from_ip": "300.1.1.1"},
    {"to_ip": "example.org"},
    {"subject": "x", "subject_filter_type": "Regex"},
    {"timezone": "Mars/Olympus"},
    {"now": "soon"},
    {"page": 0},
    {"page_size": 5001},
    {"result_size": 5001},
    {"page": 2, "result_size": 10},
    {"starting_recipient_address": "bob@example.org"},
    {"page": "two"},
]


@pytest.mark.parametrize("params", TRACE_ERRORS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_trace_errors_are_400_with_the_cli_message(store: Path, client: TestClient, params: dict[str, Any]) -> None:
    answer = client.get("/api/v1/trace", params=params)
    assert answer.status_code == 400
    cli = cli_run("trace", "--store", str(store), *cli_options(params))
    assert cli.exit_code != 0
    assert cli.stderr.startswith("Error: ")
    assert answer.json() == {"error": cli.stderr.strip().removeprefix("Error: ")}


def test_detail_and_summary_errors(store: Path, client: TestClient) -> None:
    row = first_failed(client)
    cases = [
        ("/api/v1/detail", {"recipient_address": "a@b"}, "--message-trace-id is required"),
        ("/api/v1/detail", {"message_trace_id": "zz", "recipient_address": "a@b"}, "invalid --message-trace-id 'zz'"),
        ("/api/v1/detail", {"message_trace_id": row["MessageTraceId"], "recipient_address": "a@b", "page": 1}, "unknown parameter 'page'"),
        ("/api/v1/summary", {"status": "Nope"}, "invalid --status 'Nope'"),
        ("/api/v1/summary", {"page_size": 10}, "unknown parameter 'page_size'"),
        ("/api/v1/trace", {"sender": "alice@example.com"}, "unknown parameter 'sender': valid parameters are"),
        ("/api/v1/trace", {"max_age_days": 10**12}, "invalid --max-age-days 1000000000000"),
    ]  # fmt: skip
    for path, params, message in cases:
        answer = client.get(path, params=params)
        assert answer.status_code == 400, (path, params)
        assert answer.json()["error"].startswith(message), answer.json()


def test_the_age_limit_message_is_the_clis(client: TestClient) -> None:
    error = client.get("/api/v1/trace", params={"start_date": "2026-05-01"}).json()["error"]
    assert "older than the 10-day limit" in error and "--max-age-days 0" in error


def test_every_answer_has_the_security_headers(client: TestClient) -> None:
    for path in ["/", "/trace?status=Nope", "/dashboard", "/api/v1/trace", "/api/v1/trace?page=x", "/openapi.json",
                 "/healthz", "/static/style.css", "/static/nothing.css", "/nowhere"]:  # fmt: skip
        answer = client.get(path)
        assert answer.headers["content-security-policy"] == CSP, path
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP and "unsafe" not in CSP


def test_no_endpoint_changes_anything(client: TestClient) -> None:
    for path in [
        "/",
        "/trace",
        "/api/v1/trace",
        "/api/v1/detail",
        "/api/v1/summary",
        "/dashboard",
        "/static/style.css",
    ]:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert client.request(method, path).status_code == 405, (method, path)


@pytest.mark.parametrize(
    "path",
    ["/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2f%2e%2e/pyproject.toml"],
)
def test_static_files_cannot_escape_their_folder(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404
    assert "import" not in answer.text


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200


def test_openapi_lists_the_api_with_the_python_parameter_names(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    trace = doc["paths"]["/api/v1/trace"]["get"]
    names = {p["name"] for p in trace["parameters"]}
    assert {"sender_address", "recipient_address", "start_date", "page_size", "result_size", "max_age_days"} <= names
    assert set(doc["paths"]) == {"/api/v1/trace", "/api/v1/detail", "/api/v1/summary"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_with_an_auth_file_every_page_and_api_call_needs_basic_credentials(store: Path, tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"alice:{hash_password('s3cret pass')}\n")
    app = create_app(store, Authenticator(read_users(users)), Defaults(now=NOW, timezone="UTC"))
    with TestClient(app) as c:
        for path in [
            "/",
            "/trace",
            "/dashboard",
            "/api/v1/trace",
            "/api/v1/summary",
            "/openapi.json",
            "/static/style.css",
        ]:
            answer = c.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"].startswith("Basic ")
            assert answer.headers["content-security-policy"] == CSP
            assert c.get(path, headers=basic("alice", "wrong")).status_code == 401
            assert c.get(path, headers=basic("bob", "s3cret pass")).status_code == 401
            assert c.get(path, headers={"Authorization": "Basic !!!"}).status_code == 401
            assert c.get(path, headers=basic("alice", "s3cret pass")).status_code == 200, path
        assert c.get("/healthz").status_code == 200  # a probe needs no password and learns nothing


def test_password_hashes_are_scrypt_and_never_the_password() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("correct horse", "scrypt$1$1$1$!!$!!")
    assert hash_password("x") != hash_password("x")  # salted


def web_user_add(auth_file: Path, user: str, typed: str) -> Result:
    return CliRunner().invoke(cli, ["web-user", "add", "--auth-file", str(auth_file), user], input=typed)


def test_web_user_add_writes_user_hash_lines(tmp_path: Path) -> None:
    auth = tmp_path / "users"
    assert web_user_add(auth, "alice", "pw-one\npw-one\n").exit_code == 0
    assert web_user_add(auth, "bob", "pw-two\npw-two\n").exit_code == 0
    text = auth.read_text()
    assert "pw-one" not in text and "pw-two" not in text
    assert [line.split(":")[0] for line in text.splitlines()] == ["alice", "bob"]
    assert auth.stat().st_mode & 0o777 == 0o600
    users = read_users(auth)
    assert verify_password("pw-one", users["alice"]) and verify_password("pw-two", users["bob"])
    # a second add changes the password, keeps one line
    assert web_user_add(auth, "alice", "pw-new\npw-new\n").exit_code == 0
    users = read_users(auth)
    assert len(users) == 2 and verify_password("pw-new", users["alice"])


@pytest.mark.parametrize(
    ("user", "typed", "message"),
    [
        ("alice", "one\ntwo\n", "Error: the two passwords differ"),
        ("alice", "\n\n", "Error: the password is empty"),
        ("al:ice", "x\nx\n", "Error: invalid user name 'al:ice'"),
    ],
)
def test_web_user_add_errors(tmp_path: Path, user: str, typed: str, message: str) -> None:
    result = web_user_add(tmp_path / "users", user, typed)
    assert result.exit_code != 0
    assert result.output.strip().startswith(message) and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "users").exists()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "mail.example.org"])
def test_web_refuses_a_non_loopback_address_without_an_auth_file(store: Path, host: str) -> None:
    result = cli_run("web", "--store", str(store), "--host", host)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: --host {host} is not a loopback address")


def test_web_checks_its_options_before_serving(store: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("")
    (tmp_path / "bad").write_text("alice:plaintext\n")
    cases = [
        (["--store", str(tmp_path / "nope")], "Error: store"),
        (["--store", str(store), "--auth-file", str(tmp_path / "missing")], "Error: cannot read --auth-file"),
        (["--store", str(store), "--auth-file", str(tmp_path / "empty")], "Error: the --auth-file has no users"),
        (["--store", str(store), "--auth-file", str(tmp_path / "bad")], "Error: --auth-file"),
        (["--store", str(store), "--timezone", "Mars/Olympus"], "Error: unknown time zone"),
    ]
    for args, message in cases:
        result = cli_run("web", *args)
        assert result.exit_code != 0, args
        assert result.output.strip().startswith(message) and len(result.output.strip().splitlines()) == 1, result.output


def test_dashboard_cache_computes_once_for_requests_that_miss_together() -> None:
    import threading
    import time

    from msgtrace.web.app import DashboardCache

    cache = DashboardCache(ttl=60)
    calls: list[int] = []

    def compute() -> str:
        calls.append(1)
        time.sleep(0.2)
        return "figures"

    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(("24h",), compute))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == ["figures"] * 6 and len(calls) == 1
    assert DashboardCache(ttl=0).get(("x",), compute) == "figures" and len(calls) == 2


@pytest.mark.slow
def test_msgtrace_web_serves_over_http_with_basic_auth(store: Path, tmp_path: Path) -> None:
    """The command itself: uvicorn on 127.0.0.1 on a free port, credentials required, stopped here."""
    import http.client
    import os
    import socket
    import subprocess
    import sys
    import time

    auth = tmp_path / "users"
    assert web_user_add(auth, "helpdesk", "pw pw pw\npw pw pw\n").exit_code == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    msgtrace = Path(sys.executable).parent / "msgtrace"
    proc = subprocess.Popen(
        [str(msgtrace), "web", "--store", str(store), "--port", str(port), "--auth-file", str(auth), "--now", NOW],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "MSGTRACE_TZ": "UTC"},
    )
    try:

        def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()

        deadline = time.monotonic() + 60
        while True:
            try:
                assert get("/healthz")[0] == 200
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert get("/api/v1/trace")[0] == 401
        status, body = get("/api/v1/trace?start_date=2026-06-12", basic("helpdesk", "pw pw pw"))
        assert status == 200 and json.loads(body)["total"] > 20
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_web_says_in_one_line_when_the_port_is_taken(store: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = cli_run("web", "--store", str(store), "--port", str(port))
    assert result.exit_code != 0
    assert (
        result.output.strip()
        == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another --port or --host"
    )


def test_searches_read_the_days_through_the_servers_column_cache(store: Path) -> None:
    """The equality tests above run with the cache on (create_app's default); here, that it fills
    and that a second answer, from memory, is still the CLI's."""
    params = {**WINDOW, "sender_address": ["*@example.org"]}
    for cache_mb, fills in ((8, True), (0, False)):
        app = create_app(store, defaults=Defaults(now=NOW, timezone="UTC"), cache_mb=cache_mb)
        with TestClient(app) as c:
            first = c.get("/api/v1/trace", params=params).json()["rows"]
            again = c.get("/api/v1/trace", params=params).json()["rows"]
        cache = app.app.cache
        assert (cache is not None and cache.size > 0) is fills
        assert first == again == cli_json(store, "trace", params)
