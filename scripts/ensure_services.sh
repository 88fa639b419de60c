#!/usr/bin/env bash
# Make sure RabbitMQ, Redis and PostgreSQL answer on loopback. Start the ones
# that are installed but stopped; fail with a clear message for missing ones.
set -u

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # name port seconds
  local i
  for ((i = 0; i < $3 * 2; i++)); do
    answers "$2" && return 0
    sleep 0.5
  done
  echo "ensure_services: $1 did not come up on 127.0.0.1:$2 within $3s" >&2
  return 1
}

ensure() {  # name port binary start-command...
  local name=$1 port=$2 binary=$3
  shift 3
  if answers "$port"; then
    echo "ensure_services: $name is up on 127.0.0.1:$port"
    return 0
  fi
  if ! command -v "$binary" >/dev/null 2>&1; then
    echo "ensure_services: $name is not running on 127.0.0.1:$port and '$binary' is not installed." >&2
    echo "  Install it (Debian: apt-get install $name) or start it yourself, then run make again." >&2
    return 1
  fi
  echo "ensure_services: starting $name"
  "$@" || { echo "ensure_services: could not start $name with: $*" >&2; return 1; }
  wait_for "$name" "$port" 90
}

status=0
ensure rabbitmq-server 5672 rabbitmq-server rabbitmq-server -detached || status=1
ensure redis-server 6379 redis-server \
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || status=1
ensure postgresql 5432 pg_ctlcluster \
  bash -c 'pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start' || status=1

# The tests make a vhost each through the management API (milliseconds, where each
# rabbitmqctl call starts an Erlang VM); a few drills still use rabbitmqctl.
if [ $status -eq 0 ] && ! answers 15672; then
  echo "ensure_services: enabling RabbitMQ's management plugin (port 15672)"
  if rabbitmq-plugins enable rabbitmq_management >/dev/null; then
    wait_for rabbitmq_management 15672 60 || status=1
  else
    echo "ensure_services: 'rabbitmq-plugins enable rabbitmq_management' failed" >&2
    status=1
  fi
fi
if [ $status -eq 0 ] && ! command -v rabbitmqctl >/dev/null 2>&1; then
  echo "ensure_services: the fault tests drop connections with rabbitmqctl, which is missing" >&2
  status=1
fi
exit $status
