"""Paging: V1 (Page/PageSize over the whole result) and the V2 cursor (ResultSize, StartingRecipientAddress)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from msgtrace.query.filters import QueryError

MAX_ROWS = 1_000_000
MAX_PAGE = 1000
MAX_PAGE_SIZE = 5000
DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Paging:
    """How much of the sorted result to return: mode "v1" (a page), "v2" (a cursor page) or "all"."""

    mode: str = "v1"
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    result_size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_params(
        cls,
        page: int | None = None,
        page_size: int | None = None,
        result_size: int | None = None,
        starting_recipient_address: str | None = None,
        default: str = "v1",
    ) -> Paging:
        """Validate the paging parameters; V1 and V2 ones cannot be mixed."""
        v1 = page is not None or page_size is not None
        v2 = result_size is not None or starting_recipient_address is not None
        if v1 and v2:
            raise QueryError.naming(
                "{page}/{page_size} (V1 paging) and {result_size}/{starting_recipient_address} "
                "(V2 paging) cannot be combined: use one or the other"
            )
        if page is not None and not 1 <= page <= MAX_PAGE:
            raise QueryError.naming("invalid {page} {value}: use 1 to {most}", value=page, most=MAX_PAGE)
        if page_size is not None and not 1 <= page_size <= MAX_PAGE_SIZE:
            raise QueryError.naming("invalid {page_size} {value}: use 1 to {most}", value=page_size, most=MAX_PAGE_SIZE)
        if result_size is not None and not 1 <= result_size <= MAX_PAGE_SIZE:
            raise QueryError.naming(
                "invalid {result_size} {value}: use 1 to {most}", value=result_size, most=MAX_PAGE_SIZE
            )
        if v2:
            return cls(mode="v2", result_size=result_size or DEFAULT_PAGE_SIZE)
        if v1 or default == "v1":
            return cls(mode="v1", page=page or 1, page_size=page_size or DEFAULT_PAGE_SIZE)
        return cls(mode="all")

    @property
    def offset(self) -> int:
        """Rows of the sorted result skipped before this page."""
        return (self.page - 1) * self.page_size if self.mode == "v1" else 0

    @property
    def limit(self) -> int | None:
        """Rows wanted after the offset (None: all)."""
        if self.mode == "v1":
            return self.page_size
        if self.mode == "v2":
            return self.result_size
        return None


def check_total(total: int) -> None:
    """The 1,000,000-row limit of one query."""
    if total > MAX_ROWS:
        raise QueryError.naming(
            "the query matches {total:,} rows, more than the {most:,}-row limit of one query: "
            "split the date window ({start_date}/{end_date}) into smaller intervals",
            total=total,
            most=MAX_ROWS,
        )


def next_page_command(
    prog: str, options: list[tuple[str, str]], start: str, end: str, recipient: str, result_size: int
) -> str:
    """The shell-quoted command for the next V2 page: same options, cursor moved to the last row."""
    argv = [prog, "trace"]
    for name, value in options:
        argv += [name, value] if value != "" else [name]  # "": a flag (--follow)
    argv += [
        "--start-date", start,
        "--end-date", end,
        "--starting-recipient-address", recipient,
        "--result-size", str(result_size),
    ]  # fmt: skip
    return shlex.join(argv)
