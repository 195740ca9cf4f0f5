# duofit developer entry points. A fresh machine needs only Python 3.11.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q -c constraints.txt

.PHONY: venv demo test lint bench constraints clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(PIP) -e '.[all,dev]'
	touch $@

venv: $(VENV)/.installed  ## create .venv with duofit, torch, tensorflow, jax and the dev tools

demo: venv  ## run the tutorial's problem on every backend; writes results/seed/
	$(BIN)/duofit compare examples/seed.toml --out results/seed

test: venv  ## the whole tox matrix (lint, torch, keras, keras-torch, keras-jax, all)
	$(BIN)/tox run -e lint,torch,keras,keras-torch,keras-jax,all

lint: venv  ## ruff, mypy, the import contracts and the docstring examples (as `tox run -e lint`, in .venv)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy && $(BIN)/lint-imports --no-cache \
	  && $(BIN)/pytest -q -p no:cacheprovider --doctest-modules duofit tests/test_imports.py

constraints: venv  ## re-pin constraints.txt from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -iE '^(pip|setuptools|wheel)==' \
	  | sed -E 's/^torch==([0-9.]+)\+.*/torch==\1/' > constraints.txt

clean:
	rm -rf $(VENV) .tox results
