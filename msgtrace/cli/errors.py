"""How the CLI reports errors: one line `Error: ...`, no traceback, no exception class name.

A msgtrace.errors.MsgtraceError is worded for the library; here its parameters get their option
names (`start_date` -> `--start-date`), in this one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import click

from msgtrace.errors import MsgtraceError

# Parameters whose option is not the parameter's name in kebab case.
_OPTION_OF = {"output_format": "--output", "fmt": "--format"}


class BadInput(click.ClickException):
    """A usage error shown as one line `Error: ...` (no usage block), exit code 2."""

    exit_code = 2


def option_spelling(name: str, value: str | None) -> str:
    """A parameter as the CLI writes it: `--start-date`, `--max-age-days 0`."""
    option = _OPTION_OF.get(name, "--" + name.replace("_", "-"))
    return option if value is None else f"{option} {value}"


def cli_message(e: MsgtraceError) -> str:
    """A library error's message with its parameters named as options (the CLI's and the web's words)."""
    return e.render(option_spelling)


def cli_error(e: MsgtraceError) -> click.ClickException:
    """The one-line `Error: ...` of a library error, its parameters named as options (exit code 1)."""
    return click.ClickException(cli_message(e))


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input and failures (polars, pyarrow, OS errors) as one line `Error: ...`, not a traceback.

    MSGTRACE_DEBUG=1 shows the traceback of unexpected errors.
    """
    try:
        yield
    except MsgtraceError as e:
        raise cli_error(e) from None
    except click.ClickException:
        raise
    except Exception as e:
        if os.environ.get("MSGTRACE_DEBUG"):
            raise
        raise click.ClickException(one_line(e)) from None


def one_line(e: BaseException) -> str:
    """An unexpected failure as a sentence: its first line, escaped (it may quote raw file bytes)."""
    from msgtrace.ingest.terminal import neutralize

    text = str(e).strip().splitlines()
    first = neutralize(text[0]) if text else "an unexpected failure"
    return f"{first} (set MSGTRACE_DEBUG=1 to see where)"
