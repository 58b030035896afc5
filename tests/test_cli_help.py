"""Every command's --help (the root group's, every subcommand's, any group's subcommands') shows an
example of its own use, and every example parses: a renamed option cannot leave a stale example."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from msgtrace.cli import cli


def command_paths(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The name path of every command under group, groups' subcommands included."""
    ctx = click.Context(group, info_name="msgtrace")
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += command_paths(command, (*path, name))
    return found


COMMANDS = command_paths(cli)


def examples(path: tuple[str, ...]) -> list[str]:
    r = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert r.exit_code == 0, r.output
    prefix = " ".join(("Example: msgtrace", *path)) + " "
    return [line.strip()[len("Example: ") :] for line in r.output.splitlines() if line.strip().startswith(prefix)]


def test_every_command_is_walked() -> None:
    expected = {"ingest", "compact", "watch", "status", "trace", "detail", "summary", "generate"}
    assert expected <= {p[0] for p in COMMANDS}


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "msgtrace")
def test_every_help_has_an_example_that_parses(path: tuple[str, ...]) -> None:
    found = examples(path)
    assert found, f"`msgtrace {' '.join(path)} --help` has no line `Example: msgtrace {' '.join(path)} ...`"
    for example in found:
        words = shlex.split(example)[1:]
        command: click.Command = cli
        while isinstance(command, click.Group) and words and words[0] in command.list_commands(click.Context(command)):
            sub = command.get_command(click.Context(command), words[0])
            assert sub is not None
            command, words = sub, words[1:]
        command.make_context(command.name or "msgtrace", words)  # raises on an unknown option or bad value


def test_python_m_msgtrace_runs_the_cli_without_the_watcher() -> None:
    """`python -m msgtrace` is the CLI (tests/test_watch_kill.py runs the watcher so); listing the
    commands imports neither watchdog nor the watcher."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['msgtrace', '--help']\n"
        "try:\n    runpy.run_module('msgtrace', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "print('watchdog' in sys.modules, 'msgtrace.ingest.watcher' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, check=True)
    assert "Commands:" in done.stdout and "watch " in done.stdout
    assert done.stdout.splitlines()[-1] == "False False"
