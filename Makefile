# Two commands on a fresh machine (each creates .venv and installs the project when it is missing):
#   make run    the main job: the notebook sequence via papermill; with FER2013 found, the course on it with the
#               published models (nothing trained), else the smoke run on synthetic faces (PROFILE=NAME, DATA=path,
#               OUT=dir, REUSE=reports to reuse the published models instead of training, PARAMS="-p NAME VALUE ..."
#               to set notebook parameters, e.g. PARAMS="-p seed 1 -p filters 64,128,256"; an unknown NAME stops it)
#   make test   the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?=
DATA ?=
OUT ?=
REUSE ?=
PARAMS ?=

.PHONY: setup run test test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: setup
	$(PY) -m fer_utils run $(if $(PROFILE),--profile $(PROFILE)) $(if $(DATA),--data $(DATA)) $(if $(OUT),--out $(OUT)) $(if $(REUSE),--reuse $(REUSE)) $(PARAMS)

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) runs .pytest_cache
