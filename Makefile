# Two commands on a fresh machine: `make demo` and `make test` (README).
# Both create .venv when absent. TORCH_SPEC pins the torch build installed first:
# on this kind of machine torch==2.13.0 is a CPU wheel from local disk; on a GPU
# cluster set TORCH_SPEC to the CUDA build you want (e.g. TORCH_SPEC='torch>=2.3').
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
# pytest workers for the default suite (pytest-xdist); each test file stays on one worker so
# its module fixtures (the end-to-end demo run, the workflow copy) are built once
TEST_WORKERS ?= 2
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test test-slow test-slurm lint format bench clean-demo install

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml --keep-going

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

test-slurm: $(STAMP)
	$(BIN)/python -m pytest -m slurm

lint: $(STAMP)
	$(BIN)/ruff check microlib tests
	$(BIN)/ruff format --check microlib tests
	$(BIN)/lint-imports
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --configfile config/demo.yaml

format: $(STAMP)
	$(BIN)/ruff check --fix microlib tests
	$(BIN)/ruff format microlib tests
	$(BIN)/snakefmt Snakefile workflow/rules

bench: $(STAMP)
	$(BIN)/microlib bench train
	$(BIN)/microlib bench generate

clean-demo:
	rm -rf data/demo_site data/raw data/annotations data/segmented data/masks data/training \
	       data/models data/volumes data/metrics data/media data/microlibDataset data/microlibDataset.zip \
	       data/logs data/benchmarks
