"""The golden-file helper of the four formats' parser tests: one naming scheme, one comparison.

Beside each input tests/fixtures/<format>/<case>.log (Postfix audit cases: the corpus' log, and
tests/fixtures/postfix/audit/<case>.*) the goldens are named for what they hold:

    <case>.events.jsonl    the parsed events (each format's test says which columns), then any unknown lines
    <case>.messages.jsonl  the message rows
    <case>.detail.jsonl    what `msgtrace detail` lists for each row (Postfix audit cases)

Regenerate with `pytest --update-golden` and review the diff by eye.
"""

from __future__ import annotations

import json
from pathlib import Path

KINDS = ("events", "messages", "detail")


def golden_path(folder: Path, case: str, kind: str) -> Path:
    """The golden file of one case holding `kind` (events, messages, detail)."""
    assert kind in KINDS, kind
    return folder / f"{case}.{kind}.jsonl"


def check_golden(rows: list[dict], path: Path, update: bool, *, sort_keys: bool = False) -> None:
    """Compare rows with a JSON-lines golden file, row by row (or rewrite it first with --update-golden).

    sort_keys: written with sorted keys (Exim, Sendmail, Exchange) or in the rows' column order
    (Postfix), as each format's goldens have always been written, so a rewrite changes no byte
    of an unchanged result.
    """
    if update:
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=sort_keys) + "\n" for r in rows)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run pytest --update-golden and review it"
    expected = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    for i, (got, want) in enumerate(zip(rows, expected, strict=False)):
        assert got == want, f"{path.name} row {i} differs"
    assert len(rows) == len(expected), f"{path.name}: {len(rows)} rows, expected {len(expected)}"


# The message-row columns the Exim and Sendmail golden cases compare (their correlator output).
MESSAGE_COLUMNS = [
    "received",
    "host",
    "queue_ids",
    "message_id",
    "sender_address",
    "recipient_address",
    "subject",
    "status",
    "to_ip",
    "from_ip",
    "size",
    "orig_recipient",
    "relay",
    "dsn",
    "detail",
    "delay",
]
