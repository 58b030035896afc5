"""Screenshots of the search page and the dashboard for the README (`make web-screenshots`):
`msgtrace web` over the demo store, photographed by Debian's Chromium through Playwright.

    python -m tests.web_screenshots data/demo-store docs
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from msgtrace.web.app import create_app
from msgtrace.web.params import Defaults
from tests.helpers_web import NOW, chromium, serving

PAGES = {
    "web-search.png": "/trace?start_date=2026-06-12&end_date=2026-06-14T12:00:00Z&timezone=UTC",
    "web-dashboard.png": "/dashboard?range=7d&timezone=UTC",
}


def main(store: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with serving(create_app(store, defaults=Defaults(now=NOW, timezone="UTC"))) as url:
        with tempfile.TemporaryDirectory() as profile, chromium(Path(profile)) as browser:
            page = browser.new_page()
            for name, path in PAGES.items():
                page.goto(url + path)
                page.screenshot(path=str(out / name))
                print(out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
