# Two commands for a new user: `make run` (whole pipeline on the default data) and `make test`.
# Both create .venv from the exact pins in requirements.txt when it is missing, and reuse it when present.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml say plain `python`: putting the venv first on PATH makes that the venv's.
export PATH := $(VENV)/bin:$(PATH)

.PHONY: run test venv dag clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (auxcut needs Python 3.11; set PYTHON=...)" >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

run: $(STAMP)
	dvc repro
	python -m auxcut.summary

test: $(STAMP)
	python -m pytest

dag: $(STAMP)
	dvc dag

clean-venv:
	rm -rf $(VENV)
