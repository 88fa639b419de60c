#!/usr/bin/env bash
# `make run`: a worker on the example tasks plus the Flask dev server, stopped together.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
"$BIN/taskcore" worker -A webapp.tasks:app -Q default --concurrency 4 &
worker=$!
trap 'kill -TERM $worker 2>/dev/null; wait $worker' EXIT INT TERM
"$BIN/flask" --app webapp:create_app run --port "${PORT:-5000}"
