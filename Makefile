# Two commands on a fresh machine: `make run` (the bot) and `make test` (the checks CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run console test lint bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

## run the bot: with Slack tokens in .env it connects to Slack; without them it opens the local console
run: $(VENV)/.installed
	$(PY) -m bot

console: $(VENV)/.installed
	$(PY) -m bot console

## lint, type-check and run every test (PostgreSQL on 127.0.0.1:5432 if it answers, else a throwaway one)
test: $(VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider

bench: $(VENV)/.installed
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) *.egg-info .mypy_cache .ruff_cache .pytest_cache
