# stockpred: `make demo` and `make test` work from a fresh clone (Python 3.11 required).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/data/dagster_home
export BENTOML_HOME ?= $(CURDIR)/data/bentoml

.PHONY: install demo test test-fast dev serve validate clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "stockpred needs Python 3.11, found " + sys.version.split()[0])'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python scripts/demo.py

test: install
	scripts/ensure-test-services.sh
	$(BIN)/pytest

test-fast: install
	scripts/ensure-test-services.sh
	$(BIN)/pytest -m "not slow"

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

serve: install
	$(BIN)/bentoml serve bento.service:StockPredictor --port 3000

validate: install
	$(BIN)/dagster definitions validate -w workspace.yaml

clean:
	rm -rf data
