# `make demo` and `make test` work on a fresh clone: they create .venv when missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlpot-installed

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml constraints.txt
	@# a venv whose creation failed half-way (no python3-venv) has a python but no pip: made again
	@$(PY) -m pip --version >/dev/null 2>&1 || (rm -rf $(VENV) && python3 -m venv $(VENV))
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	@# one worker per core (at most 4: each holds ~3 GB), a test file per worker so its fixtures and
	@# compiled programs are made once: 2 cores take ~7.5 min where one process took ~15-20
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m pytest -q -n auto --maxprocesses=4 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:  # the environment and the demo's run; runs/ also holds users' training runs, kept
	rm -rf $(VENV) runs/demo-ethanol build *.egg-info
