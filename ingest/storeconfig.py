"""The store's own settings (`<store>/_state/config.json`), so every later run and the watcher agree.

Today one setting: `local_domains`, from `--local-domains` of ingest and watch, which query-time
Direction (msgtrace.query.direction) reads. Written atomically; a missing file means defaults.
"""

from __future__ import annotations

import json
from pathlib import PurePath
from typing import Any

CONFIG_FILE = "config.json"  # a state file of the store (msgtrace.store.StateFiles)


def config_path(store: PurePath) -> PurePath:
    """Where the store keeps its settings (shared by its writers)."""
    from msgtrace.store import Store

    return Store(store).shared.path(CONFIG_FILE)


def read_config(store: PurePath) -> dict[str, Any]:
    """The store's settings; {} when it has none (or the file cannot be read as JSON)."""
    from msgtrace.store import Store

    try:
        text = Store(store).shared.read_text(CONFIG_FILE)
        data = json.loads(text) if text is not None else {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def parse_domains(values: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Comma-separated (or repeated) domains, lowercased, without a leading @; ValueError when one is not a domain."""
    items = [values] if isinstance(values, str) else list(values)
    out: list[str] = []
    for item in items:
        for part in item.split(","):
            d = part.strip().lower().lstrip("@")
            if not d:
                continue
            if "@" in d or " " in d or "." not in d.strip(".") or d.startswith(".") or d.endswith("."):
                raise ValueError(f"invalid --local-domains value {part.strip()!r}: expected a domain like example.org")
            out.append(d)
    return tuple(dict.fromkeys(out))


def save_local_domains(store: PurePath, domains: tuple[str, ...]) -> bool:
    """Keep these local domains in the store's settings; True when they changed."""
    from msgtrace.store import Store

    config = read_config(store)
    if tuple(config.get("local_domains", ())) == domains:
        return False
    config["local_domains"] = list(domains)
    Store(store).shared.write_text(CONFIG_FILE, json.dumps(config, indent=1, sort_keys=True) + "\n")
    return True
