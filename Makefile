# make run   - start RabbitMQ/Redis/PostgreSQL if needed, a worker and the web app
# make test  - set everything up on a fresh machine and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services test lint run clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/ensure_services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install services lint
	$(BIN)/pytest

run: install services
	bash scripts/run_dev.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
