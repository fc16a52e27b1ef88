# The two commands of the README:
#   make demo   runs the default workflow (offline, real DFT data) and writes report.html
#   make test   runs the test suite
# Each creates the Python environment first if it is missing (scripts/bootstrap.sh).

CORES ?= 2
SHELL := /bin/bash
# Use the active virtualenv/conda env when there is one, else ./.venv.
BIN := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin,$(if $(CONDA_PREFIX),$(CONDA_PREFIX)/bin,.venv/bin))

.PHONY: env demo test dry-run lint constraints cluster-smoke clean

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

# The default workflow twice, into $(SMOKE_DIR)/local (plain local run) and $(SMOKE_DIR)/cluster
# (through profiles/cluster-smoke: every job a batch script that scripts/cluster_smoke/submit.sh
# runs in the background), then the two results/ diffed (scripts/compare_results.py, and the
# bytes of every file outside benchmarks/). Needs snakemake-executor-plugin-cluster-generic
# (pip install -e '.[cluster]'). Never touches ./results.
SMOKE_DIR ?= cluster-smoke
cluster-smoke: env
	@$(BIN)/python -c 'import snakemake_executor_plugin_cluster_generic' 2>/dev/null || { \
	    echo "make cluster-smoke: error: snakemake-executor-plugin-cluster-generic is missing; pip install -e '.[cluster]'" >&2; exit 2; }
	rm -rf $(SMOKE_DIR) && mkdir -p $(SMOKE_DIR)/local $(SMOKE_DIR)/cluster
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --cores $(CORES) --directory $(SMOKE_DIR)/local \
	    --configfile $(abspath config/config.yaml)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/snakemake --profile $(abspath profiles/cluster-smoke) --jobs $(CORES) --cores $(CORES) \
	    --directory $(SMOKE_DIR)/cluster --configfile $(abspath config/config.yaml)
	$(BIN)/python scripts/cluster_smoke/diff.py $(SMOKE_DIR)/local/results $(SMOKE_DIR)/cluster/results

clean:
	rm -rf results logs .snakemake cluster-smoke
