# make run   - start RabbitMQ/Redis/PostgreSQL if needed, a worker and the web app
# make test  - set everything up on a fresh machine and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: install services browser prometheus schema test lint run bench drills clean sentinel-up sentinel-down cluster-up cluster-down

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/ensure_services.sh

# Debian's chromium for the browser tests (Playwright drives it; no browser download).
browser:
	bash scripts/ensure_debian_package.sh /usr/bin/chromium chromium 'browser tests'

# Debian's prometheus package for promtool (every metrics scrape in the tests goes through it).
prometheus:
	bash scripts/ensure_debian_package.sh promtool prometheus 'metrics and alerting tests'

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The task history tables (tests also make a schema of their own per test).
schema: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/taskcore init-db

# Three test processes on two cores: most tests wait on a worker, the broker or a
# browser, and each isolates itself (vhost, namespace, key prefix, schema, port).
PYTEST_WORKERS ?= 3

test: install services schema lint browser prometheus
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

# Benchmarks against Celery and Dramatiq, and the I/O-bound section against Taskiq too
# (extra "bench"); not part of make test.
bench: install services
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)
	$(BIN)/python scripts/bench_io.py $(BENCH_ARGS)
	$(BIN)/python scripts/bench_cluster.py

# Fault drills at full size (scripts/drills): kill workers, cut and restart the broker, stop
# Redis and PostgreSQL (private instances: the shared services are never stopped), then
# reconcile every task. Minutes; `python -m scripts.drills --short` runs the suite's sizes.
drills: install services
	$(BIN)/python -m scripts.drills

# A Redis master, a replica and three sentinels on this machine (ports 26400-26412), for
# trying TASKCORE_REDIS_URL=sentinel://...; `up` prints the settings to export.
sentinel-up: install
	$(BIN)/python -m scripts.redis_sentinel up

sentinel-down:
	$(BIN)/python -m scripts.redis_sentinel down

# A RabbitMQ cluster of three nodes on this machine (r2, r3, r4 @localhost, AMQP ports
# 5682-5684; run as root: the nodes run as the rabbitmq user), for trying several broker
# URLs and TASKCORE_QUEUE_TYPE=quorum; `up` prints the settings to export, `down` stops
# the nodes and deletes their data.
cluster-up: install
	$(BIN)/python -m scripts.rabbit_cluster up

cluster-down:
	$(BIN)/python -m scripts.rabbit_cluster down

run: install services
	bash scripts/run_dev.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
