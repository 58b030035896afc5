"""The machine's IANA time zone name, and validation of user-supplied zone names."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from msgtrace.errors import MsgtraceError


class ZoneError(MsgtraceError, ValueError):
    """An unknown time zone name."""


def local_zone() -> str:
    """The machine's zone: $TZ, /etc/timezone, the /etc/localtime link, else UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        candidates.append(Path("/etc/timezone").read_text().strip())
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            candidates.append(target.split("zoneinfo/", 1)[1])
    except OSError:
        pass
    for name in candidates:
        if name:
            try:
                ZoneInfo(name)
                return name
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return "UTC"


def check_zone(name: str) -> str:
    """The name if it is a known IANA zone, else ZoneError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ZoneError(f"unknown time zone {name!r}; use an IANA name such as Europe/Vienna or UTC") from None
    return name
