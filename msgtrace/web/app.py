"""The `msgtrace web` application: Starlette routes, security headers, HTTP Basic, templates.

Every route is a GET that reads the store through the library calls of the CLI (web.service,
web.dashboard); none changes anything. Handlers are plain functions, which Starlette runs in its
thread pool, so a slow query does not stop the event loop from answering others.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from msgtrace.cli.errors import cli_message
from msgtrace.defaults import WEB_CACHE_MB
from msgtrace.query.filters import QueryError
from msgtrace.web import pages
from msgtrace.web import params as P
from msgtrace.web.auth import Authenticator
from msgtrace.web.openapi import openapi

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"

# No inline script or style, nothing from elsewhere, no framing: log text is attacker-controlled.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Answered without credentials: a load balancer's probe learns nothing from it.
OPEN_PATHS = ("/healthz",)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class Config:
    """What the server was started with."""

    store: Path
    defaults: P.Defaults = field(default_factory=P.Defaults)
    dashboard_ttl: float = 15.0  # seconds a computed dashboard is reused


class Guard:
    """ASGI middleware: HTTP Basic when there is an authenticator, security headers on every answer."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator | None) -> None:
        self.app, self.authenticator = app, authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k, v) for k, v in SECURITY_HEADERS if k not in names),
                ]
            await send(message)

        if self.authenticator is not None and scope["path"] not in OPEN_PATHS:
            header = dict(scope.get("headers", [])).get(b"authorization")
            user = self.authenticator.user(header.decode("latin-1") if header else None)
            if user is None:
                response = PlainTextResponse(
                    "401 Unauthorized: this msgtrace needs a user name and password.\n",
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="msgtrace", charset="UTF-8"'},
                )
                await response(scope, receive, send_with_headers)
                return
            scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send_with_headers)


# Threads the handlers run in (Starlette's pool; anyio's default is 40). The work is CPU-bound, so
# more threads than about twice the cores only interleave requests: 8 clients on 2 cores with 40
# threads had a search p95 of 214 ms, with 4 threads 114 ms (same p50, 80 ms), and a dashboard p95
# of 537 and 536 ms against 374 and 339 ms (bench.web, the host busy with other work).
HANDLER_THREADS = max(4, 2 * (os.cpu_count() or 1))


class Reads:
    """ASGI middleware: every request reads the store through this server's column cache
    (msgtrace.store.cache), so a search of recent days filters decoded columns in memory, and
    runs in a pool of HANDLER_THREADS threads, so requests are answered about in turn."""

    def __init__(self, app: ASGIApp, store: Path, cache_mb: int) -> None:
        from msgtrace.store import ColumnCache

        self.app, self.store = app, store
        self.cache = ColumnCache(cache_mb * 2**20) if cache_mb > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        import anyio.to_thread

        from msgtrace.store import reading_through

        limiter = anyio.to_thread.current_default_thread_limiter()  # one per event loop
        if limiter.total_tokens != HANDLER_THREADS:
            limiter.total_tokens = HANDLER_THREADS
        with reading_through(self.store, self.cache):
            await self.app(scope, receive, send)


def bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def api_route(run: Callable[[Request, Config], Response]) -> Callable[[Request], Response]:
    """An API handler with bad input as HTTP 400 {"error": "<the CLI's message>"}."""

    def handler(request: Request) -> Response:
        try:
            return run(request, request.app.state.config)
        except QueryError as e:
            return bad_request(cli_message(e))

    handler.__name__ = run.__name__
    return handler


def _json(body: str) -> Response:
    return Response(body, media_type="application/json")


def api_trace(request: Request, config: Config) -> Response:
    from msgtrace.web import service

    P.check_names(request.query_params, P.TRACE_PARAMS)
    arguments = P.read(request.query_params, P.TRACE_PARAMS, config.defaults)
    page = service.trace(config.store, arguments)

    # rows: the very text `msgtrace trace --output json` prints; the paging fields after it
    meta = json.dumps(page.paging())
    return _json('{"rows": ' + service.rows_json(page.rows) + ", " + meta[1:])


def api_detail(request: Request, config: Config) -> Response:
    from msgtrace.query import output
    from msgtrace.web import service

    P.check_names(request.query_params, P.DETAIL_PARAMS)
    events = service.detail(config.store, P.read(request.query_params, P.DETAIL_PARAMS, config.defaults, multi=()))
    return _json('{"events": ' + output.to_json(events).strip() + "}")


def api_summary(request: Request, config: Config) -> Response:
    from msgtrace.query import output
    from msgtrace.web import service

    P.check_names(request.query_params, P.FILTER_PARAMS)
    counts = service.summary(config.store, P.read(request.query_params, P.FILTER_PARAMS, config.defaults))
    return _json('{"counts": ' + output.to_json(counts).strip() + "}")


def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi())


class DashboardCache:
    """Dashboards computed in the last few seconds, by (range, zone, now): a wall of screens
    refreshing the page costs one computation, not one each (requests that miss together wait
    for the first one's result)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[object, ...], tuple[float, Any]] = {}
        self._computing: dict[tuple[object, ...], threading.Lock] = {}

    def _fresh(self, key: tuple[object, ...]) -> tuple[bool, Any]:
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return True, hit[1]
        return False, None

    def get(self, key: tuple[object, ...], compute: Callable[[], Any]) -> Any:
        found, value = self._fresh(key)
        if found:
            return value
        with self._lock:
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            found, value = self._fresh(key)  # computed meanwhile by the request we waited for
            if found:
                return value
            value = compute()
            with self._lock:
                if len(self._entries) > 32:
                    self._entries.clear()
                    self._computing = {key: key_lock}
                self._entries[key] = (time.monotonic(), value)
        return value


async def server_error(request: Request, exc: Exception) -> Response:
    """An unexpected failure as one line (the CLI's `Error: Type: text`), never a traceback."""
    from msgtrace.cli.errors import one_line

    text = one_line(exc)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": text}, status_code=500)
    return PlainTextResponse(f"Error: {text}\n", status_code=500)


def create_app(
    store: Path,
    authenticator: Authenticator | None = None,
    defaults: P.Defaults | None = None,
    dashboard_ttl: float = 15.0,
    cache_mb: int = WEB_CACHE_MB,
) -> Any:
    """The ASGI application over one store (a directory or an s3:// prefix that must exist).

    cache_mb: memory for the decoded columns of the files searches read (msgtrace.store.cache),
    shared by every request of this process; 0 for none (and none on object storage)."""
    config = Config(store if isinstance(store, PurePath) else Path(store), defaults or P.Defaults(), dashboard_ttl)
    routes = [
        Route("/", pages.search),
        Route("/trace", pages.search),
        Route("/trace.csv", pages.export_csv),
        Route("/message/{trace_id}", pages.message),
        Route("/dashboard", pages.dashboard),
        Route("/api/v1/trace", api_route(api_trace)),
        Route("/api/v1/detail", api_route(api_detail)),
        Route("/api/v1/summary", api_route(api_summary)),
        Route("/openapi.json", openapi_json),
        Route("/healthz", healthz),
        # StaticFiles resolves every path inside its folder and refuses one that leaves it (404)
        Mount("/static", StaticFiles(directory=STATIC_DIR, follow_symlink=False), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={Exception: server_error})
    app.state.config = config
    app.state.dashboards = DashboardCache(dashboard_ttl)
    app.state.started = dt.datetime.now(dt.UTC)
    return Guard(Reads(app, config.store, cache_mb), authenticator)
