#!/usr/bin/env bash
# `make run`: a worker on the example tasks, the history recorder and the Flask dev
# server, stopped together. History goes to DATABASE_URL (default: ./taskcore.sqlite3).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
"$BIN/taskcore" init-db
"$BIN/taskcore" worker -A webapp.tasks:app -Q default --concurrency 4 &
worker=$!
"$BIN/taskcore" recorder -A webapp.tasks:app &
recorder=$!
trap 'kill -TERM $worker $recorder 2>/dev/null; wait $worker $recorder' EXIT INT TERM
"$BIN/flask" --app webapp:create_app run --port "${PORT:-5000}"
