"""Point a real Prometheus at a running taskcore stack and watch the numbers move.

Starts, on loopback and on free ports, against a RabbitMQ vhost, a Redis namespace and a
PostgreSQL schema of its own (all removed at the end):

* the web app (``flask run``), the recorder and a beat, each with its metrics endpoint;
* Debian's ``prometheus`` server, scraping them every second with the job names of
  ``deploy/prometheus/prometheus.yml`` and evaluating ``deploy/prometheus/alerts.yml``.

Then it sends tasks while no worker runs (the web app's gauges must show the backlog, no
live worker, and TaskcoreNoWorkerForQueue pending), starts ``taskcore worker --processes 2
--metrics-port`` and polls Prometheus's HTTP API until ``taskcore_tasks_total`` counts every
task by outcome, the backlog is gone, the dead letters are counted and the recorder wrote the
events. Last, every query of the Grafana dashboard runs against this Prometheus, every alert
rule must evaluate without error, and each process's scrape must pass ``promtool check
metrics``. It prints what it saw and exits 0, or 1 naming what did not happen. Usage:

    .venv/bin/python scripts/prometheus_check.py [--timeout 60] [--keep-logs]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "taskcore.json"
APP = "webapp.tasks:app"

# What is sent while no worker runs, and what each must end as.
ADDS = 30  # webapp.tasks.add: succeeded
PINGS = 10  # webapp.tasks.ping (async): succeeded
RETRIERS = 3  # webapp.tasks.wait_for(-1): retried twice, then failed (dead-lettered)
UNKNOWN = 2  # a task name no worker knows: dead_lettered
SENT = ADDS + PINGS + RETRIERS + UNKNOWN
READY = 'max(taskcore_queue_messages_ready{queue="default"})'
DEAD = 'max(taskcore_queue_dead_letters{queue="default"})'
CONSUMERS = 'max(taskcore_queue_consumers{queue="default"})'
QUEUE_WORKERS = 'max(taskcore_queue_workers_alive{queue="default"})'


class CheckFailed(Exception):
    """Something the stack should have shown did not show in time."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=60, help="seconds per wait (60)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary directory")
    options = parser.parse_args()
    for binary in ("prometheus", "promtool", "rabbitmqctl"):
        if shutil.which(binary) is None:
            print(f"{binary} is not installed (`make test` installs Prometheus)", file=sys.stderr)
            return 1
    started = time.monotonic()
    with Stack(keep_logs=options.keep_logs) as stack:
        try:
            check(stack, options.timeout)
        except CheckFailed as exc:
            print(f"\nFAILED: {exc}", file=sys.stderr)
            stack.print_logs()
            return 1
    print(f"\nOK in {time.monotonic() - started:.1f} s")
    return 0


# -- the stack ----------------------------------------------------------------------------------


class Stack(contextlib.ExitStack):
    """Everything this run made, undone in reverse order on exit (also on errors and ^C)."""

    def __init__(self, keep_logs: bool) -> None:
        super().__init__()
        self.keep_logs = keep_logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Stack:
        super().__enter__()
        self.directory = Path(tempfile.mkdtemp(prefix="taskcore-prometheus-"))
        if not self.keep_logs:
            self.callback(shutil.rmtree, self.directory, ignore_errors=True)
        else:
            self.callback(print, f"logs kept in {self.directory}")
        self.vhost = f"taskcore-prom-{uuid.uuid4().hex[:8]}"
        rabbitmqctl("add_vhost", self.vhost)
        self.callback(rabbitmqctl, "delete_vhost", self.vhost)
        rabbitmqctl("set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*")
        self.namespace = f"tcprom{uuid.uuid4().hex[:8]}"
        self.callback(delete_redis_keys, f"{self.namespace}:*")
        self.schema = f"tc_prom_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg2://", 1))
        with admin.begin() as connection:
            connection.execute(sa.text(f"CREATE SCHEMA {self.schema}"))
        self.callback(drop_schema, admin, self.schema)
        self.env = {
            **os.environ,
            "TASKCORE_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/"
            + urllib.parse.quote(self.vhost, safe=""),
            "TASKCORE_REDIS_URL": REDIS_URL,
            "TASKCORE_NAMESPACE": self.namespace,
            "DATABASE_URL": f"{PG_URL}?options=-csearch_path%3D{self.schema}",
            "WEBAPP_SECRET_KEY": secrets.token_hex(32),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("TASKCORE_METRICS_PORT", None)
        self.env.pop("WEBAPP_METRICS_TOKEN", None)
        return self

    def start(self, name: str, *argv: str) -> subprocess.Popen[bytes]:
        """Start a process with this stack's environment; stopped (TERM, then KILL) on exit."""
        log = (self.directory / f"{name}.log").open("wb")
        self.callback(log.close)
        process = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        self.processes[name] = process
        self.callback(stop, process)
        return process

    def taskcore(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        return self.start(name, sys.executable, "-m", "workers", *args)

    def log(self, name: str) -> str:
        path = self.directory / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def print_logs(self, lines: int = 25) -> None:
        for name in self.processes:
            tail = self.log(name).splitlines()[-lines:]
            print(f"\n--- {name}.log (last {len(tail)} lines) ---", file=sys.stderr)
            print("\n".join(tail), file=sys.stderr)

    def alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise CheckFailed(f"{name} exited with {process.returncode}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")


def delete_redis_keys(pattern: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(pattern))
    if keys:
        client.delete(*keys)
    client.close()


def drop_schema(engine: sa.Engine, schema: str) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for(what: str, probe: Callable[[], Any], timeout: float, stack: Stack) -> Any:
    """Call ``probe`` until it returns something truthy; CheckFailed naming ``what`` if never."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        stack.alive()
        try:
            found = probe()
        except (OSError, urllib.error.URLError, KeyError, ValueError) as exc:
            found, last_error = None, exc
        if found:
            return found
        time.sleep(0.25)
    raise CheckFailed(f"{what}: not seen within {timeout:.0f} s (last error: {last_error})")


# -- Prometheus ---------------------------------------------------------------------------------


class Prometheus:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http_get(f"{self.base}/api/v1/{path}{query}")
        answer = json.loads(body)
        if status != 200 or answer.get("status") != "success":
            raise ValueError(f"{path} {params}: HTTP {status} {answer.get('error', body[:200])}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` now, or None when it has no series."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def by(self, expr: str, label: str) -> dict[str, float]:
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}


def prometheus_config(ports: dict[str, int], interval: str) -> str:
    jobs = {
        "taskcore-web": "web",
        "taskcore-worker": "worker",
        "taskcore-beat": "beat",
        "taskcore-recorder": "recorder",
    }
    scrape = "\n".join(
        f'  - job_name: {job}\n    static_configs:\n      - targets: ["127.0.0.1:{ports[name]}"]'
        for job, name in jobs.items()
    )
    return (
        f"global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        f"rule_files:\n  - {json.dumps(str(ALERTS))}\n"
        f"scrape_configs:\n{scrape}\n"
    )


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every dashboard target, Grafana's variables filled in."""
    board = json.loads(DASHBOARD.read_text())
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(r"\$\{?__(?:rate_)?interval\}?|\$\{?__range\}?", "30s", target["expr"])
            found.append(
                (f"{panel['title']} [{target['refId']}]", re.sub(r"\$\{?\w+\}?", ".*", expr))
            )
    return found


# -- the check ----------------------------------------------------------------------------------


def check(stack: Stack, timeout: float) -> None:
    run = Run(stack, timeout)
    run.start_without_worker()
    run.backlog_without_worker()
    run.worker_runs_everything()
    run.web_requests()
    run.dashboard_rules_and_scrapes()


class Run:
    """The steps of one check, sharing the stack, the ports and the Prometheus client."""

    def __init__(self, stack: Stack, timeout: float) -> None:
        self.stack = stack
        self.timeout = timeout
        names = ("web", "worker", "beat", "recorder", "prometheus")
        self.ports = {name: free_port() for name in names}
        self.prom = Prometheus(self.ports["prometheus"])

    def wait(self, what: str, probe: Callable[[], Any]) -> Any:
        return wait_for(what, probe, self.timeout, self.stack)

    def value(self, expr: str) -> float:
        """The value of ``expr``, which must have one series."""
        found = self.prom.value(expr)
        if found is None:
            raise CheckFailed(f"{expr}: no series")
        return found

    def alert(self, name: str) -> list[dict[str, Any]]:
        alerts = self.prom.api("alerts")["alerts"]
        return [a for a in alerts if a["labels"]["alertname"] == name]

    def start_without_worker(self) -> None:
        stack, ports = self.stack, self.ports
        print(f"vhost {stack.vhost}, namespace {stack.namespace}, schema {stack.schema}")
        print("ports: " + ", ".join(f"{name} {port}" for name, port in ports.items()))
        init = subprocess.run(
            [sys.executable, "-m", "workers", "init-db"],
            cwd=ROOT,
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if init.returncode != 0:
            raise CheckFailed(f"taskcore init-db failed: {init.stderr or init.stdout}")
        flask = [sys.executable, "-m", "flask", "--app", "webapp:create_app", "run"]
        flask += ["--host", "127.0.0.1", "--port", str(ports["web"]), "--no-reload"]
        stack.start("web", *flask, "--no-debugger")
        stack.taskcore("recorder", "recorder", "-A", APP, "--metrics-port", str(ports["recorder"]))
        stack.taskcore("beat", "beat", "-A", APP, "--metrics-port", str(ports["beat"]))
        config = stack.directory / "prometheus.yml"
        config.write_text(prometheus_config(ports, "1s"))
        stack.start(
            "prometheus",
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={stack.directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            "--log.level=warn",
        )
        prom = self.prom
        self.wait("Prometheus ready", lambda: http_get(f"{prom.base}/-/ready")[0] == 200)
        print(f"Prometheus {prom.api('status/buildinfo')['version']} on {prom.base}")

        def up(*jobs: str) -> bool:
            active = prom.api("targets")["activeTargets"]
            return all(
                any(t["labels"]["job"] == job and t["health"] == "up" for t in active)
                for job in jobs
            )

        self.wait(
            "web, beat and recorder targets up",
            lambda: up("taskcore-web", "taskcore-beat", "taskcore-recorder"),
        )
        print("targets up: taskcore-web, taskcore-beat, taskcore-recorder (no worker yet)")

    def backlog_without_worker(self) -> None:
        """Tasks while no worker runs: the web app's gauges show them waiting."""
        from taskcore import TaskApp

        sender = TaskApp(
            "prometheus-check",
            broker_url=self.stack.env["TASKCORE_BROKER_URL"],
            redis_url=REDIS_URL,
            namespace=self.stack.namespace,
        )
        self.stack.callback(sender.close)
        for i in range(ADDS):
            sender.send_task("webapp.tasks.add", [i, 1])
        for _ in range(PINGS):
            sender.send_task("webapp.tasks.ping")
        for _ in range(RETRIERS):
            sender.send_task("webapp.tasks.wait_for", [-1])
        for _ in range(UNKNOWN):
            sender.send_task("webapp.tasks.no_such_task", queue="default")
        sent_at = time.monotonic()
        print(f"\nsent {SENT} tasks to queue default with no worker running")
        self.wait(  # the beat may add its ping
            f"taskcore_queue_messages_ready{{queue=default}} >= {SENT}",
            lambda: (self.prom.value(READY) or 0) >= SENT,
        )
        print(
            f"  after {time.monotonic() - sent_at:.1f} s Prometheus sees "
            f"taskcore_queue_messages_ready{{queue=default}} = {self.value(READY):.0f}, "
            f"taskcore_workers_alive = {self.value('max(taskcore_workers_alive)'):.0f}, "
            f"taskcore_queue_consumers{{queue=default}} = {self.value(CONSUMERS):.0f}"
        )
        alert = self.wait(
            "TaskcoreNoWorkerForQueue{queue=default} pending",
            lambda: [
                a
                for a in self.alert("TaskcoreNoWorkerForQueue")
                if a["labels"].get("queue") == "default"
            ],
        )
        print(f"  alert TaskcoreNoWorkerForQueue{{queue=default}}: {alert[0]['state']}")

    def worker_runs_everything(self) -> None:
        """A worker (two processes, one metrics endpoint) runs them all."""
        self.stack.taskcore(
            "worker",
            *("worker", "-A", APP, "-Q", "default", "--processes", "2", "--concurrency", "4"),
            *("--metrics-port", str(self.ports["worker"])),
        )
        started = time.monotonic()
        print("\nstarted taskcore worker --processes 2 --metrics-port")
        expected = {
            "succeeded": ADDS + PINGS,
            "retried": 2 * RETRIERS,
            "failed": RETRIERS,
            "dead_lettered": UNKNOWN,
        }

        def all_counted() -> dict[str, float] | None:
            seen = self.prom.by("sum by (outcome) (taskcore_tasks_total)", "outcome")
            return seen if all(seen.get(k, 0) >= v for k, v in expected.items()) else None

        outcomes = self.wait(f"taskcore_tasks_total by outcome >= {expected}", all_counted)
        print(
            f"  after {time.monotonic() - started:.1f} s taskcore_tasks_total by outcome: "
            + ", ".join(f"{k} {v:.0f}" for k, v in sorted(outcomes.items()))
        )
        succeeded = self.prom.by(
            'sum by (task) (taskcore_tasks_total{outcome="succeeded"}) > 0', "task"
        )
        print("  succeeded by task: " + ", ".join(f"{k} {v:.0f}" for k, v in succeeded.items()))

        self.wait(
            "the web app's gauges: backlog 0, dead letters counted, workers alive",
            lambda: (
                self.prom.value(READY) == 0
                and self.prom.value(DEAD) == RETRIERS + UNKNOWN
                and (self.prom.value("max(taskcore_workers_alive)") or 0) >= 2
                and (self.prom.value(QUEUE_WORKERS) or 0) >= 2
            ),
        )
        print(
            f"  web app gauges: ready{{default}} = {self.value(READY):.0f}, "
            f"dead_letters{{default}} = {self.value(DEAD):.0f}, "
            f"workers_alive = {self.value('max(taskcore_workers_alive)'):.0f}, "
            f"queue_workers_alive{{default}} = {self.value(QUEUE_WORKERS):.0f}, "
            f"consumers{{default}} = {self.value(CONSUMERS):.0f}"
        )
        for name, metric in (
            ("run time", "taskcore_task_runtime_seconds"),
            ("queue wait", "taskcore_task_queue_wait_seconds"),
        ):
            figures = [
                f"p{int(q * 100)} "
                f"{self.value(f'histogram_quantile({q}, sum by (le) ({metric}_bucket))'):.3g} s"
                for q in (0.5, 0.95)
            ]
            count = self.value(f"sum({metric}_count)")
            print(f"  {name}: {count:.0f} observations, " + ", ".join(figures))

        written = self.wait(
            "the recorder writes the events",
            lambda: self.prom.value("sum(taskcore_recorder_events_written_total)"),
        )
        self.wait(
            "recorder backlog 0",
            lambda: self.prom.value("max(taskcore_recorder_backlog_messages)") == 0,
        )
        print(
            f"  recorder: events_written_total = {written:.0f}, write_errors_total = "
            f"{self.value('sum(taskcore_recorder_write_errors_total)'):.0f}, backlog = "
            f"{self.value('max(taskcore_recorder_backlog_messages)'):.0f}, "
            f"lag = {self.value('max(taskcore_recorder_lag_seconds)'):.2g} s"
        )
        lag = self.prom.by("max by (schedule) (taskcore_schedule_lag_seconds)", "schedule")
        print(f"  beat: leader = {self.value('max(taskcore_beat_leader)'):.0f}, schedule lag {lag}")
        alert = self.wait(
            "TaskcoreDeadLettersRising pending", lambda: self.alert("TaskcoreDeadLettersRising")
        )
        print(f"  alert TaskcoreDeadLettersRising{{queue=default}}: {alert[0]['state']}")

    def web_requests(self) -> None:
        """The web app's own HTTP metrics."""
        web = f"http://127.0.0.1:{self.ports['web']}"
        paths = ["/healthz"] * 5 + ["/readyz", "/api/v1/health", "/no-such-page", "/login"]
        statuses = [http_get(web + path)[0] for path in paths]
        healthz = 'sum(taskcore_http_requests_total{endpoint=~".*healthz"})'
        unmatched = 'sum(taskcore_http_requests_total{endpoint="unmatched", status="404"})'
        self.wait(
            "taskcore_http_requests_total counts the /healthz requests and the 404",
            lambda: (self.prom.value(healthz) or 0) >= 5 and (self.prom.value(unmatched) or 0) >= 1,
        )
        seen = self.prom.query("sum by (endpoint, status) (taskcore_http_requests_total)")
        print(
            f"\nsent {len(paths)} HTTP requests (statuses {sorted(set(statuses))}); "
            "taskcore_http_requests_total by endpoint and status (Prometheus's scrapes too): "
            + ", ".join(
                f"{r['metric']['endpoint']} {r['metric']['status']} {float(r['value'][1]):.0f}"
                for r in sorted(seen, key=lambda r: r["metric"]["endpoint"])
            )
        )
        p95 = self.value(
            "histogram_quantile(0.95, sum by (le) (taskcore_http_request_duration_seconds_bucket))"
        )
        print(f"  request duration p95 (every request so far): {p95:.3g} s")

    def dashboard_rules_and_scrapes(self) -> None:
        """The dashboard's queries, the alert rules, and promtool check metrics on each scrape."""
        time.sleep(2)  # a few more samples for rate()
        empty, errors = [], []
        queries = dashboard_queries()
        for title, expr in queries:
            try:
                if not self.prom.query(expr):
                    empty.append(title)
            except ValueError as exc:
                errors.append(f"{title}: {exc}")
        print(
            f"\ndashboard: {len(queries)} queries, {len(queries) - len(empty) - len(errors)} "
            f"with data, {len(errors)} errors; empty: {', '.join(empty) or 'none'}"
        )
        if errors:
            raise CheckFailed("dashboard queries failed:\n" + "\n".join(errors))

        rules = [r for g in self.prom.api("rules")["groups"] for r in g["rules"]]
        bad = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] != "ok"]
        active = {r["name"]: r["state"] for r in rules if r.get("state") != "inactive"}
        print(f"alert rules: {len(rules)} loaded, {len(rules) - len(bad)} evaluate ok; {active}")
        if bad:
            raise CheckFailed("alert rules fail to evaluate:\n" + "\n".join(bad))

        failures = []
        for name in ("web", "worker", "beat", "recorder"):
            status, text = http_get(f"http://127.0.0.1:{self.ports[name]}/metrics")
            if status != 200:
                raise CheckFailed(f"{name}'s /metrics answered {status}")
            lint = subprocess.run(
                ["promtool", "check", "metrics"], input=text, capture_output=True, text=True
            )
            verdict = "ok" if lint.returncode == 0 and not lint.stdout.strip() else "problems"
            print(f"promtool check metrics {name}: {verdict} ({len(text.splitlines())} lines)")
            if verdict != "ok":
                failures.append(f"{name}: {lint.stdout}{lint.stderr}")
        if failures:
            raise CheckFailed("promtool check metrics:\n" + "\n".join(failures))


if __name__ == "__main__":
    sys.exit(main())
