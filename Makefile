# Two commands for a new user: `make run` (whole pipeline on the default data) and `make test`.
# Both create .venv from the exact pins in requirements.txt when it is missing, and reuse it when present.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := $(CURDIR)/.venv
STAMP := $(VENV)/.installed
# Stage commands in dvc.yaml say plain `python`: putting the venv first on PATH makes that the venv's.
export PATH := $(VENV)/bin:$(PATH)

.PHONY: run test validate venv dag ui serve study report clean-venv
UI_PORT ?= 5000
SERVE_PORT ?= 5001

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (auxcut needs Python 3.11; set PYTHON=...)" >&2; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# One `make run` is one pipeline run in MLflow: its stage runs are grouped under one parent.
run: $(STAMP)
	auxcut run

# Two pytest-xdist workers, a test file each at a time: the DVC runs leave a core idle much of the time (startup,
# I/O, single-threaded stages). A file's module fixtures stay in one worker; the session pipeline
# is built once, in the background from the start, and each worker copies it (tests/conftest.py). Files go out in
# conftest.FIRST's order (longest and self-building first), not xdist's most-tests-first.
# The ten slowest tests are listed at the end, so a suite creeping towards its 15-minute budget shows where.
test: $(STAMP)
	python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=10

# Reproduce whatever is stale, then the metrics against the committed ones and the quality gates of
# params.yaml `validate:`; fails (exit 1) when a gate does.
validate: $(STAMP)
	AUXCUT_PIPELINE_RUN=validate-$$(date -u +%Y%m%dT%H%M%SZ) dvc repro
	auxcut validate

dag: $(STAMP)
	dvc dag

# `mlflow server` on <repo>/mlflow.db (or $$MLFLOW_TRACKING_URI), one worker, no job runner; prints the runs page's URL.
ui: $(STAMP)
	@auxcut ui --port $(UI_PORT)

# The latest registered predictor (auxcut-<data.source>) on http://127.0.0.1:$(SERVE_PORT)/invocations.
serve: $(STAMP)
	auxcut serve --port $(SERVE_PORT)

# The UTKFace study (reports/study-utkface.md): every configuration x seed x head; hours on a CPU.
STUDY_ARGS ?= --configs utkface-15 utkface-30 --seeds 0 1 2 --hardware cpu
study: $(STAMP)
	auxcut study run $(STUDY_ARGS)

report: $(STAMP)
	auxcut study report

clean-venv:
	rm -rf $(VENV)
