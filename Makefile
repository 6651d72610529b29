# stockpred: `make demo` and `make test` work from a fresh clone (Python 3.11 required).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export BENTOML_HOME ?= $(CURDIR)/data/bentoml
# PORT: what the target serves: Dagster's UI (make dev), the prediction service (make serve, make demo).
# DASHBOARD_PORT: the analysts' dashboard (make dashboard).
# MLFLOW_PORT: the MLflow UI that make dev starts; the run links and plots a run records in Dagster point there.
PORT ?= 3000
MLFLOW_PORT ?= 5000
DASHBOARD_PORT ?= 8050
demo dev: export STOCKPRED_MLFLOW_UI_URL ?= http://127.0.0.1:$(MLFLOW_PORT)

.PHONY: install lock demo test test-fast dev serve dashboard validate clean

# TORCH=cpu (default): PyTorch's CPU build (~190 MB) for the MLP family; TORCH=cuda: PyPI's CUDA build (~3 GB, what
# the GPU image uses); TORCH=none: no PyTorch (nor Lightning), the MLP and GRU families are skipped with a message
# saying why.
TORCH ?= cpu
STAMP := $(VENV)/.installed-$(TORCH)
# requirements/lock.txt: the runtime dependencies (what the images install); requirements/dev.txt: the same pins plus
# the dev extras (tests, linters), what `make install` installs. Both pin every package with its hashes.
LOCK := requirements/lock.txt
DEV_LOCK := requirements/dev.txt

$(STAMP): pyproject.toml $(DEV_LOCK) requirements/torch-$(TORCH).txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "stockpred needs Python 3.11, found " + sys.version.split()[0])'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes --no-deps -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	$(if $(filter none,$(TORCH)),$(BIN)/pip uninstall --quiet --yes torch lightning pytorch-lightning torchmetrics,$(BIN)/pip install --quiet -r requirements/torch-$(TORCH).txt)
	$(BIN)/pip check
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Re-resolve the locks after changing pyproject.toml's dependencies: pins with the hashes of every file PyPI serves,
# resolved against PyPI alone (no machine-local index or wheel folder); the dev lock keeps the runtime lock's pins.
PIP_COMPILE := env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --generate-hashes \
	--allow-unsafe --strip-extras --no-emit-find-links
lock:
	$(PIP_COMPILE) -o $(LOCK) pyproject.toml
	$(PIP_COMPILE) --extra dev -c $(LOCK) -o $(DEV_LOCK) pyproject.toml

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

# The intraday part of the demo needs redis-server: installed as for the tests, else that part is skipped.
demo: install $(DAGSTER_HOME)/dagster.yaml
	@command -v redis-server >/dev/null 2>&1 || scripts/ensure-test-services.sh || echo "redis-server could not be installed: the intraday part will be skipped"
	DASHBOARD_PORT=$(DASHBOARD_PORT) $(BIN)/python scripts/demo.py --port $(PORT)

test: install
	scripts/ensure-test-services.sh
	$(BIN)/pytest

test-fast: install
	scripts/ensure-test-services.sh
	$(BIN)/pytest -m "not slow"

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python scripts/dev.py --port $(PORT) --mlflow-port $(MLFLOW_PORT)

serve: install
	$(BIN)/bentoml serve bento.service:StockPredictor --port $(PORT)

# The analysts' dashboard on the lake, Redis and MLflow the settings name (docs/dashboard.md).
dashboard: install
	$(BIN)/stockpred-dashboard --host 127.0.0.1 --port $(DASHBOARD_PORT)

validate: install
	$(BIN)/dagster definitions validate -w workspace.yaml

clean:
	rm -rf data
