"""The `msgtrace` command line: the root group, its commands (one module per command or family) and main().

    msgtrace.cli.options   the options commands share (one --store, --timezone, --now, ...)
    msgtrace.cli.errors    one-line `Error: ...` reporting; library parameters -> option names
    msgtrace.cli.ingest    ingest, compact          msgtrace.cli.watch     watch, status
    msgtrace.cli.trace     trace                    msgtrace.cli.detail    detail
    msgtrace.cli.summary   summary                  msgtrace.cli.generate  generate
    msgtrace.cli.web       web, web-user (the pages and API themselves are msgtrace.web)

Every command is registered lazily ("module:attribute"): `msgtrace trace` imports neither the
watcher nor the generator, and polars/pyarrow are imported inside the commands.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from msgtrace.cli.errors import BadInput

PROG = "msgtrace"

# name -> "module:attribute" of the command, imported when it is used (or listed by --help).
COMMANDS = {
    "ingest": "msgtrace.cli.ingest:ingest_command",
    "compact": "msgtrace.cli.ingest:compact_command",
    "watch": "msgtrace.cli.watch:watch_command",
    "status": "msgtrace.cli.watch:status_command",
    "trace": "msgtrace.cli.trace:trace",
    "detail": "msgtrace.cli.detail:detail",
    "summary": "msgtrace.cli.summary:summary",
    "generate": "msgtrace.cli.generate:generate",
    "web": "msgtrace.cli.web:web",
    "web-user": "msgtrace.cli.web:web_user",
    "report": "msgtrace.cli.report:report",
    "historical-search": "msgtrace.cli.historical:historical_search",
}


class OneLineGroup(click.Group):
    """A group whose subcommands' usage errors (bad option values, unknown options) print one line,
    and whose subcommands are imported only when used (`lazy`: name -> "module:attribute")."""

    lazy: dict[str, str] = {}

    def add_lazy(self, name: str, target: str) -> None:
        """Register a command imported only when it is used (or listed by --help)."""
        self.lazy = {**self.lazy, name: target}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            import importlib

            module, attr = self.lazy[cmd_name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand, turning click usage errors into one-line errors."""
        try:
            return super().invoke(ctx)
        except click.UsageError as e:
            raise BadInput(e.format_message()) from None


@click.group(cls=OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="msgtrace", prog_name=PROG)
def cli() -> None:
    """Message trace for self-hosted mail servers, like Exchange Online's Get-MessageTrace.

    Ingest Postfix, Exim, Sendmail and Exchange logs into a Parquet store, then trace messages.

    \b
    Example: msgtrace trace --sender-address john@contoso.com --start-date 06/13/2018 --end-date 06/15/2018
    """


for _name, _target in COMMANDS.items():
    cli.add_lazy(_name, _target)


def main() -> None:
    """Console entry point of `msgtrace` (and `python -m msgtrace`)."""
    try:
        cli(prog_name=PROG)
    except BrokenPipeError:
        # `msgtrace trace | head`: stop quietly; point stdout at devnull so the exit flush does not fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
