#!/usr/bin/env bash
# `make run`: a worker on the example tasks, the history recorder and the Flask dev
# server, stopped together. The console's users and the task history share DATABASE_URL
# (default: instance/webapp.sqlite3). The session secret is made once and kept in
# instance/secret_key (instance/ is not committed) unless WEBAPP_SECRET_KEY is set.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

mkdir -p instance
export DATABASE_URL=${DATABASE_URL:-sqlite:///$PWD/instance/webapp.sqlite3}
if [ -z "${WEBAPP_SECRET_KEY:-}" ]; then
  if [ ! -s instance/secret_key ]; then
    (umask 077 && "$BIN/python" -c 'import secrets; print(secrets.token_hex(32))' >instance/secret_key)
    echo "run_dev: made a session secret in instance/secret_key"
  fi
  WEBAPP_SECRET_KEY=$(cat instance/secret_key)
  export WEBAPP_SECRET_KEY
  key_from_file=1
fi
# The dev server speaks plain HTTP: let the browser keep the session cookie without TLS.
export WEBAPP_INSECURE_COOKIES=1

"$BIN/flask" --app webapp db upgrade  # the history tables and the console's (migrations)
"$BIN/flask" --app webapp quizzes seed  # the sample quizzes (idempotent)
"$BIN/flask" --app webapp reports seed  # synthetic contracts, once (a filled table is left alone)
if "$BIN/flask" --app webapp user list | grep -q '^No users yet'; then
  prefix=""
  [ -n "${key_from_file:-}" ] && prefix='WEBAPP_SECRET_KEY=$(cat instance/secret_key) '
  cat <<HINT

  No console user yet. Create the first one (in another terminal, from this directory):

    ${prefix}$BIN/flask --app webapp user create admin --role operator

  then sign in at http://127.0.0.1:${PORT:-5000}/login

HINT
fi

"$BIN/taskcore" worker -A webapp.tasks:app -Q default,grading,statistics,documents,notifications,sms,email,reports --concurrency 4 &
worker=$!
"$BIN/taskcore" recorder -A webapp.tasks:app &
recorder=$!
"$BIN/taskcore" beat -A webapp.tasks:app &
beat=$!
trap 'kill -TERM $worker $recorder $beat 2>/dev/null; wait $worker $recorder $beat' EXIT INT TERM
"$BIN/flask" --app webapp:create_app run --port "${PORT:-5000}"
