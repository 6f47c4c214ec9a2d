# plugbox: every target bootstraps .venv itself (idempotent; uv when present, else venv + pip).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.plugbox-installed

.PHONY: demo test lint bench venv system-deps clean

$(STAMP): pyproject.toml
	@echo "==> bootstrapping $(VENV)"
	@if command -v uv >/dev/null 2>&1; then \
		uv venv -q --allow-existing --python "$(PYTHON)" $(VENV) && \
		uv pip install -q --python $(BIN)/python -e '.[host,dev]'; \
	else \
		[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV); \
		$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip && \
		$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[host,dev]'; \
	fi
	@touch $@

venv: $(STAMP)

# The benchmarks' peer (the MCP Python SDK, bench/peer_mcp.py): an extra, never a runtime dependency.
BENCH_STAMP := $(VENV)/.plugbox-bench-installed
$(BENCH_STAMP): $(STAMP)
	@if command -v uv >/dev/null 2>&1; then \
		uv pip install -q --python $(BIN)/python -e '.[host,dev,bench]'; \
	else \
		$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[host,dev,bench]'; \
	fi
	@touch $@

# System packages the tests use (bubblewrap for the sandbox layer, redis-server for the ARQ
# tests). Best effort: installed with apt-get when we are root on Debian; tests that need a
# missing one are skipped with the reason.
system-deps:
	@bash tools/system-deps.sh

demo: $(STAMP)
	@$(BIN)/plugbox demo

# The host's suite, then each bundled plugin's own tests in its own venv (`plugbox plugins test`):
# a plugin's tests import its PyPI requirements, which the host's .venv does not have.
# The suite mostly waits (plugin processes, sandboxes, deadlines), so it runs on TEST_WORKERS
# pytest-xdist workers even on 2 cores; tests that must not overlap share an `xdist_group`
# (docs/testing.md). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 3
test: $(STAMP) system-deps
	@$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup
	@set -e; for plugin in $(sort $(dir $(wildcard plugins/*/plugin.toml))); do \
		echo "==> plugbox plugins test $$plugin"; $(BIN)/plugbox plugins test $$plugin; done

lint: $(STAMP)
	@$(BIN)/ruff check host sdk plugbox_demo plugins tests bench docs
	@$(BIN)/ruff format --check host sdk plugbox_demo plugins tests bench docs
	@$(BIN)/mypy

bench: $(BENCH_STAMP)
	@set -e; for script in $(filter-out bench/_%,$(sort $(wildcard bench/*.py))); do \
		echo "==> $$script"; $(BIN)/python $$script $(BENCH_ARGS); done

clean:
	rm -rf $(VENV) .plugbox .mypy_cache .ruff_cache
