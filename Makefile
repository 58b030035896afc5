PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# rustup installs cargo and rustc in ~/.cargo/bin, which a non-login shell (CI's make) may not have on PATH
export PATH := $(HOME)/.cargo/bin:$(PATH)
RUST_SOURCES := rust/Cargo.toml rust/Cargo.lock $(wildcard rust/src/*.rs)

.PHONY: demo test test-fast lint typecheck bench bench-quick bench-ingest bench-s3 clean chromium web-screenshots

$(STAMP): pyproject.toml $(RUST_SOURCES)
	@command -v cargo >/dev/null 2>&1 || { echo "Error: no Rust toolchain (cargo) on PATH or in ~/.cargo/bin: msgtrace's parser (rust/) is compiled on install; install rustc and cargo (https://rustup.rs or apt-get install cargo), then run make again" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf data/demo-store
	$(BIN)/msgtrace ingest --store data/demo-store --timezone UTC --year 2026 data/sample
	MSGTRACE_NOW=2026-06-14T12:00:00Z $(BIN)/msgtrace trace --store data/demo-store --start-date 2026-06-12 --end-date 2026-06-14
	MSGTRACE_NOW=2026-06-14T12:00:00Z $(BIN)/msgtrace trace --store data/demo-store --start-date 2026-06-12 --end-date 2026-06-14 --status Failed,Pending
	@echo "# why did it fail? the detail of the first failed row:"
	@set -- $$(MSGTRACE_NOW=2026-06-14T12:00:00Z $(BIN)/msgtrace trace --store data/demo-store --start-date 2026-06-12 \
	    --end-date 2026-06-14 --status Failed --output jsonl | head -n 1 | \
	    $(BIN)/python -c "import json,sys; r=json.load(sys.stdin); print(r['MessageTraceId'], r['RecipientAddress'])"); \
	  MSGTRACE_NOW=2026-06-14T12:00:00Z $(BIN)/msgtrace detail --store data/demo-store --start-date 2026-06-12 \
	    --end-date 2026-06-14 --message-trace-id $$1 --recipient-address $$2
	@echo "# the same in a browser: MSGTRACE_NOW=2026-06-14T12:00:00Z $(BIN)/msgtrace web --store data/demo-store"

CODE := msgtrace ingest query tests bench examples

test: lint typecheck chromium
	$(BIN)/pytest

# The browser tests (tests/test_web_browser.py) drive Debian's Chromium through Playwright; no
# browser is ever downloaded. As root (CI, a fresh machine) it is installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || { test "$$(id -u)" = 0 && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || \
	  echo "chromium is missing (not root, or apt-get failed): the browser tests skip here and fail in CI"

# docs/web-search.png and docs/web-dashboard.png, from the demo store, for the README
web-screenshots: demo chromium
	$(BIN)/python -m tests.web_screenshots data/demo-store docs

# the suite without the tests marked slow (corpus sweeps, kills, big generated logs)
test-fast: lint typecheck
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	@# rustup's toolchains carry rustfmt; Debian's cargo does not (package rustfmt): said, not skipped silently
	@if cargo fmt --version >/dev/null 2>&1; then cd rust && cargo fmt --check; \
	  else echo "rustfmt is missing: rust/ is not format-checked here (apt-get install rustfmt)"; fi

# mypy cannot follow setuptools' editable import hook, so it reads the msgtrace namespace from a
# tree of links that mirrors the installed layout (msgtrace.ingest -> ingest/, msgtrace.query -> query/).
TYPES := build/typecheck/msgtrace
typecheck: $(STAMP)
	rm -rf build/typecheck && mkdir -p $(TYPES)
	for f in msgtrace/*; do ln -s ../../../$$f $(TYPES)/; done
	ln -s ../../../ingest $(TYPES)/ingest && ln -s ../../../query $(TYPES)/query
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.s3

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --quick
	$(BIN)/python -m bench.s3 --quick

# section 1 only (ingest of every format beside grep -cE); the other sections stay the last run's
bench-ingest: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --ingest-only

# a store on the S3 emulator (moto, 127.0.0.1) beside local disk: ingest lines/s, query latency
bench-s3: $(BENCH_STAMP)
	$(BIN)/python -m bench.s3

clean:
	rm -rf $(VENV) data/demo-store build rust/target msgtrace/_core*.so
