"""A real Prometheus scrapes a running stack and sees the numbers move.

``scripts/prometheus_check.py`` starts the web app, a beat, the recorder, a two-process worker
and Debian's ``prometheus`` on loopback (a vhost, Redis namespace and PostgreSQL schema of its
own), and exits 0 only when everything it waits for showed up in Prometheus's HTTP API. ~30 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_real_prometheus_sees_the_counters_and_gauges_move() -> None:
    done = subprocess.run(
        [sys.executable, "scripts/prometheus_check.py", "--timeout", "45"],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    # What the script waited for, as it reports it.
    assert re.search(r"taskcore_queue_messages_ready\{queue=default\} = 4[5-9]", output), output
    assert "alert TaskcoreNoWorkerForQueue{queue=default}: pending" in output
    assert re.search(r"taskcore_tasks_total by outcome: dead_lettered 2, failed 3", output), output
    assert "dead_letters{default} = 5" in output
    assert "alert TaskcoreDeadLettersRising{queue=default}: pending" in output
    assert "unmatched 404 1" in output
    assert re.search(r"dashboard: \d+ queries, \d+ with data, 0 errors", output), output
    assert re.search(r"alert rules: (\d+) loaded, \1 evaluate ok", output), output
    for process in ("web", "worker", "beat", "recorder"):
        assert f"promtool check metrics {process}: ok" in output
