"""`msgtrace web` (the trace page and HTTP API) and `msgtrace web-user add`."""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any

import click

from msgtrace.cli.options import now_option, store_option, timezone_option
from msgtrace.defaults import WEB_CACHE_MB

# starlette, uvicorn and polars are imported inside the commands: `msgtrace --help` lists these cheaply.

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """Whether binding host only accepts connections from this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("web")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8025, show_default=True, help="TCP port.")
@click.option(
    "--auth-file",
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="user:hash lines (msgtrace web-user add): every page and API call then needs HTTP Basic credentials.",
)
@click.option(
    "--cache-mb",
    metavar="MB",
    type=click.IntRange(0, 1_000_000),
    default=WEB_CACHE_MB,
    show_default=True,
    help="Memory for the decoded columns of recently searched days (searches of up to 3 days "
    "are then answered from memory); 0 reads Parquet on every search.",
)
@now_option
@timezone_option
def web(
    store: str | None,
    host: str,
    port: int,
    auth_file: Path | None,
    cache_mb: int,
    now: str | None,
    timezone: str | None,
) -> None:
    """Serve the message trace page, the dashboard and the HTTP API over a store (read-only).

    Pages: / (search), /message/<MessageTraceId> (detail), /dashboard. API: /api/v1/trace,
    /api/v1/detail, /api/v1/summary (parameters of the Python API), described at /openapi.json.
    Safe beside `msgtrace watch`: it only reads. Binds 127.0.0.1 unless --host says otherwise,
    and another address needs --auth-file; put TLS in front with a reverse proxy (see README).

    \b
    Example: msgtrace web --store /var/lib/msgtrace
    Example: msgtrace web --host 0.0.0.0 --auth-file /etc/msgtrace/users
    """
    from msgtrace.cli.errors import one_line_errors

    with one_line_errors():
        app, root = _build(store, host, auth_file, now, timezone, cache_mb)
    import uvicorn

    sock = listen(host, port)
    click.echo(f"msgtrace web: serving {root} on http://{_url_host(host)}:{port}/ (Ctrl-C stops)", err=True)
    config = uvicorn.Config(app, log_level="info", server_header=False, proxy_headers=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one `Error:` line (a port in use, a name that does not resolve)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        raise click.ClickException(
            f"cannot listen on {_url_host(host)}:{port}: {e.strerror or e}; pick another --port or --host"
        ) from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _build(
    store: str | None,
    host: str,
    auth_file: Path | None,
    now: str | None,
    timezone: str | None,
    cache_mb: int = WEB_CACHE_MB,
) -> tuple[Any, Path]:
    """The application, after the checks that must stop the command (one `Error:` line each)."""
    from msgtrace.query.engine import resolve_store
    from msgtrace.query.filters import TraceFilter
    from msgtrace.web.app import create_app
    from msgtrace.web.auth import Authenticator, AuthError, read_users
    from msgtrace.web.params import Defaults

    if auth_file is None and not is_loopback(host):
        raise click.ClickException(
            f"--host {host} is not a loopback address: anyone who reaches it could read the mail logs; "
            "pass --auth-file FILE (create it with `msgtrace web-user add --auth-file FILE USER`) or use --host 127.0.0.1"
        )
    root = resolve_store(store)
    TraceFilter.from_params(now=now, timezone=timezone)  # a bad --now or --timezone fails here, not per request
    authenticator = None
    if auth_file is not None:
        try:
            authenticator = Authenticator(read_users(auth_file))
        except AuthError as e:
            raise click.ClickException(str(e)) from None
    return create_app(root, authenticator, Defaults(now=now, timezone=timezone), cache_mb=cache_mb), root


@click.group("web-user")
def web_user() -> None:
    """Manage the users of `msgtrace web --auth-file` (scrypt hashes, never the password).

    \b
    Example: msgtrace web-user add --auth-file /etc/msgtrace/users alice
    """


@web_user.command("add")
@click.option(
    "--auth-file",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The auth file to create or update (written mode 0600).",
)
@click.argument("user")
def web_user_add(auth_file: Path, user: str) -> None:
    """Add USER to the auth file, or change their password; the password is asked twice.

    From a terminal it is typed without echo; otherwise read from stdin (two lines, the same).

    \b
    Example: msgtrace web-user add --auth-file /etc/msgtrace/users alice
    """
    from msgtrace.web.auth import AuthError, add_user, check_user_name

    try:
        check_user_name(user)
        if sys.stdin.isatty():
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            first, second = sys.stdin.readline().rstrip("\r\n"), sys.stdin.readline().rstrip("\r\n")
            if first != second:
                raise AuthError("the two passwords differ")
            password = first
        new = add_user(auth_file, user, password)
    except AuthError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:
        raise click.ClickException(f"cannot write --auth-file {str(auth_file)!r}: {e.strerror or e}") from None
    click.echo(f"{'Added' if new else 'Changed the password of'} {user} in {auth_file}.", err=True)
