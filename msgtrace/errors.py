"""The errors msgtrace raises, under one base class (no Polars import: the CLI reads them at start-up).

Library messages are worded for the library: a parameter is named as the Python caller spells it
(`start_date`). The CLI turns any MsgtraceError into one line `Error: ...` in which the same
parameter is the option (`--start-date`): see MsgtraceError.naming and msgtrace.cli.errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

# How a parameter placeholder is spelled: (name, value or None) -> text.
Spelling = Callable[[str, str | None], str]


def python_spelling(name: str, value: str | None) -> str:
    """A parameter as a Python caller writes it: `start_date`, `max_age_days=0`."""
    return name if value is None else f"{name}={value}"


class _Fields(dict[str, Any]):
    """The fields of an error template: its values, and any other name is a parameter."""

    def __init__(self, values: dict[str, Any], spell: Spelling) -> None:
        super().__init__(values)
        self.spell = spell

    def __missing__(self, key: str) -> str:
        name, _, value = key.partition("=")
        return self.spell(name, value if "=" in key else None)


class MsgtraceError(Exception):
    """Base of the errors msgtrace raises for input or data it cannot use (bad parameters, a store
    it cannot read or write, a log it cannot read); the message is one sentence for the user.

    MsgtraceError(message) is a plain sentence; SomeError.naming(template, **values) names the
    parameters it is about in a template: `{start_date}` is a parameter and `{max_age_days=0}` a
    parameter given a value, spelled `start_date` and `max_age_days=0` for the library and
    `--start-date` and `--max-age-days 0` by the CLI. Any other field is a value passed as a
    keyword, so text the user typed is never read as a placeholder:

        raise QueryError.naming("invalid {status} {value!r}: valid values are ...", value=value)
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.template: str | None = None
        self.values: dict[str, Any] = {}

    @classmethod
    def naming(cls, template: str, **values: Any) -> Self:
        """The error whose message is template, its parameters spelled for the library."""
        error = cls(template.format_map(_Fields(values, python_spelling)))
        error.template, error.values = template, values
        return error

    def render(self, spell: Spelling) -> str:
        """The message with its parameters spelled by spell (the CLI: as options)."""
        if self.template is None:
            return str(self)
        return self.template.format_map(_Fields(self.values, spell))


class QueryError(MsgtraceError, ValueError):
    """Bad input to a msgtrace call: a parameter's value, or a store path that is not a store."""
