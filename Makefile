# make run  - set up everything and start the host on the simulated board
# make test - set up everything and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: setup build run test bench lint clean

$(INSTALLED): pyproject.toml src/wasihost/runtime/_compiled.c
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "wasihost needs Python >= 3.11")'
	@echo "==> [1/3] virtual environment in $(VENV)/ (created if missing)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] installing wasihost with its build and test tools (first run or pyproject.toml changed: about a minute)"
	@$(BIN)/pip install --disable-pip-version-check --progress-bar on -e '.[dev]'
	@$(BIN)/python -c 'from wasihost.runtime import compiled; r = compiled.unavailable(); print("    compiled call plans:", "built" if r is None else f"{r}: the host uses the Python ones")'
	@touch $(INSTALLED)

setup: $(INSTALLED)

build: setup
	@echo "==> [3/3] building the shared Python runtime and component plugins (only what changed)"
	@$(BIN)/wasihost build

run: build
	@echo "==> starting wasihost on the simulated board: http://127.0.0.1:3000 (Ctrl-C stops)"
	@$(BIN)/wasihost run --config config/host.toml

test: build lint
	@echo "==> running the tests"
	@$(BIN)/pytest

bench: build
	@echo "==> building the seed plugins as components and the test plugins the benchmarks drive (only what changed)"
	@$(BIN)/wasihost build --components
	@$(BIN)/wasihost build --plugins-dir tests/plugins --out build/test-plugins generic chaos
	@echo "==> running the benchmarks (several minutes; figures in bench/results/latest.json)"
	@$(BIN)/python -m bench.run

lint: setup
	@echo "==> lint: ruff and mypy"
	@$(BIN)/ruff check -q src tests plugins bench
	@$(BIN)/ruff format -q --check src tests plugins bench
	@$(BIN)/mypy
	@$(BIN)/wasihost typecheck
	@$(BIN)/ruff check -q conftest.py && $(BIN)/ruff format -q --check conftest.py
	@tools/eslint/lint

clean:
	rm -rf build data .pytest_cache .mypy_cache .ruff_cache
