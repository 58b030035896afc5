"""The store's own settings (`<store>/_state/config.json`), so every later run and the watcher agree.

Today one setting: `local_domains`, from `--local-domains` of ingest and watch, which query-time
Direction (msgtrace.query.direction) reads. Written atomically; a missing file means defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CONFIG_FILE = "_state/config.json"


def config_path(store: Path) -> Path:
    """Where the store keeps its settings."""
    return Path(store) / CONFIG_FILE


def read_config(store: Path) -> dict[str, Any]:
    """The store's settings; {} when it has none (or the file cannot be read as JSON)."""
    try:
        data = json.loads(config_path(store).read_text(encoding="utf-8"))
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


def save_local_domains(store: Path, domains: tuple[str, ...]) -> bool:
    """Keep these local domains in the store's settings; True when they changed."""
    from msgtrace.ingest.layout import write_json_atomic

    config = read_config(store)
    if tuple(config.get("local_domains", ())) == domains:
        return False
    config["local_domains"] = list(domains)
    write_json_atomic(json.dumps(config, indent=1, sort_keys=True) + "\n", config_path(store))
    return True
