# Two commands on a fresh machine: `make bench` (set up + main job), `make test` (set up + tests).
# `make test-fast` skips the tests marked slow (a quick loop while editing).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup bench test test-fast lint format synth clean gpu-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

bench: $(STAMP)
	$(BIN)/wsolbench bench

test: lint
	$(BIN)/python -m pytest

# The quick loop: every test but the `slow` ones (pyproject.toml's markers); `make test` runs all.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

synth: $(STAMP)
	$(BIN)/wsolbench data synth --out data/synthetic

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache

# On a CUDA machine: the `gpu` tests, then VGG16 at 224 timed on the GPU (fp32, bf16), against
# wsolevaluation's loops when REFERENCE=/path/to/wsolevaluation is given; writes gpu-check.md.
# Without CUDA it says so in one line.
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py --out gpu-check.md $(if $(REFERENCE),--reference $(REFERENCE))
