# The two commands of the README:
#   make demo   runs the default workflow (offline, real DFT data) and writes report.html
#   make test   runs the test suite
# Each creates the Python environment first if it is missing (scripts/bootstrap.sh).

CORES ?= 2
SHELL := /bin/bash
# Use the active virtualenv/conda env when there is one, else ./.venv.
BIN := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin,$(if $(CONDA_PREFIX),$(CONDA_PREFIX)/bin,.venv/bin))

.PHONY: env demo test dry-run lint constraints clean

env:
	@scripts/bootstrap.sh

demo: env
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --report report.html

test: env
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS)

dry-run: env
	$(BIN)/snakemake -n

lint: env
	$(BIN)/snakemake --lint

# constraints.txt from the current environment (run after upgrading and re-testing it).
constraints: env
	$(BIN)/python scripts/make_constraints.py

clean:
	rm -rf results logs .snakemake
