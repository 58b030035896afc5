"""Ingest-side commands (`msgtrace ingest`, ...); registered on the root group by query.cli."""

from __future__ import annotations

import click


def register_commands(group: click.Group) -> None:
    """Add the ingest-side commands to the root `msgtrace` group."""
    return None
