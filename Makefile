# p2pstack: `make demo` runs two local nodes; `make test` runs every check (installs as needed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: setup demo test lint unit interop interop-setup bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

interop-setup:
	bash tests/interop/setup.sh

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/check_public_imports.py

unit: $(STAMP)
	$(BIN)/pytest -m "not interop and not slow" $(PYTEST_ARGS)

interop: $(STAMP) interop-setup
	$(BIN)/pytest -m interop $(PYTEST_ARGS)

test: $(STAMP) interop-setup lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(STAMP) interop-setup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .interop tests/interop/js/node_modules .mypy_cache .ruff_cache .pytest_cache

# Coverage-guided fuzzing of the wire parsers (fuzz/README.md): FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: $(STAMP)
	$(BIN)/python -m fuzz --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)
