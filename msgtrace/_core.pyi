"""Types of the compiled extension (rust/src/lib.rs)."""

from typing import Any

def parse_postfix(views: bytes, buffers: list[bytes], line_nos: bytes, state: dict[str, Any]) -> dict[str, Any]: ...
def parse_exchange(
    views: bytes, buffers: list[bytes], line_nos: bytes, fields: list[str] | None, reader: bool
) -> dict[str, Any]: ...
