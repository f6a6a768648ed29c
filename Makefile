# edgenas: `make demo` runs the main job, `make test` the tests; both install into .venv first (idempotent).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgenas-installed
# Tests may read the project's shared data folder when it sits beside the checkout; the package itself never does.
SHARED_DATA := $(abspath ../shared/data)
TEST_DATA   := $(or $(EDGENAS_DATA),$(wildcard $(SHARED_DATA)))

# Test processes (pytest-xdist; each computes with one torch thread): the 2 cores of the CI machine by default.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

.PHONY: install demo browser test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/edgenas run configs/demo.toml -o runs/demo --resume

# The report's browser test needs Chromium: Debian's package where apt can install it (root); else it skips, saying so.
browser:
	@command -v chromium >/dev/null 2>&1 || (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
	  >/dev/null 2>&1)) || echo "chromium could not be installed: the report's browser test will be skipped"

test: install browser
	EDGENAS_DATA="$(TEST_DATA)" $(PYTEST) --durations=10

# The suite without the tests marked slow (real processes, whole pipelines, the fuzz matrix): for development.
test-fast: install
	EDGENAS_DATA="$(TEST_DATA)" $(PYTEST) -m "not slow"

lint: install
	$(BIN)/ruff check src tests benchmarks tools

bench: install
	EDGENAS_DATA="$(TEST_DATA)" $(BIN)/python benchmarks/foundation.py --with-tests

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .hypothesis
