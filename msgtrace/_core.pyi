"""Types of the compiled extension (rust/src/lib.rs)."""

from typing import Any

def parse_postfix(data: bytes, offsets: bytes, line_nos: bytes, state: dict[str, Any]) -> dict[str, Any]: ...
