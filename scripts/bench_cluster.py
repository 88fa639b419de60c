"""What replication costs: taskcore on one RabbitMQ node and on a 3-node cluster, with
classic and with quorum queues (``TASKCORE_QUEUE_TYPE``).

Per setup: confirmed ``delay()`` one at a time, ``map()`` of a batch, and one worker
process (``-c 8``) draining the batch; the task is the benchmark's one Redis INCR.
Nodes are private (scripts/rabbit_cluster.py, the one-node setup is a "cluster" of
one, so both run the same way); each measurement has a vhost of its own and runs in
a fresh process (scripts/bench.py ``_enqueue``). Medians of ``--runs``. Usage:

    python scripts/bench_cluster.py [--runs 3] [--n 5000] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.bench import PY, REDIS_URL  # noqa: E402
from scripts.rabbit_cluster import RabbitCluster  # noqa: E402


def measure(cluster: RabbitCluster, queue_type: str, n: int) -> dict[str, float]:
    """One run: a vhost of its own on ``cluster``; tasks/s for each way of sending, and
    for one worker's drain."""
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    node = cluster.nodes[0]
    node.ctl("add_vhost", vhost)
    node.ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    urls = ";".join(f"{url}{vhost}" for url in cluster.urls)  # url ends with "/"
    env = {
        "PYTHONPATH": str(ROOT),
        "TASKCORE_BROKER_URL": urls,
        "TASKCORE_NAMESPACE": f"tc{vhost[-8:]}",
        "TASKCORE_QUEUE_TYPE": queue_type,
        "BENCH_PREFIX": prefix,
        "BENCH_REDIS_URL": REDIS_URL,
        "PATH": "/usr/bin:/bin",
    }
    client = redis.Redis.from_url(REDIS_URL)
    worker: subprocess.Popen[bytes] | None = None
    try:
        one = _child(env, "confirmed", max(200, n // 5))
        batch = _child(env, "batch", n)
        client.delete(prefix + "count")  # the drain counts the batch's n (sent just before)
        worker = subprocess.Popen(
            [PY, "-m", "workers", "--loglevel", "warning", "worker", "-A",
             "scripts.bench_apps.taskcore_app:app", "-Q", "bench", "-c", "8"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        first = _wait_count(client, prefix, 1)
        last = _wait_count(client, prefix, n)
        return {"one": one, "batch": batch, "drain": (n - 1) / (last - first)}
    finally:
        if worker is not None:
            worker.kill()
            worker.wait()
        node.ctl("delete_vhost", vhost)
        keys = list(client.scan_iter(prefix + "*")) + list(client.scan_iter(f"tc{vhost[-8:]}:*"))
        if keys:
            client.delete(*keys)


def _child(env: dict[str, str], mode: str, n: int) -> float:
    done = subprocess.run(
        [PY, str(ROOT / "scripts" / "bench.py"), "_enqueue", "taskcore", mode, str(n)],
        env=env, cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"_enqueue {mode} failed:\n{done.stderr[-3000:]}")
    return float(done.stdout)


def _wait_count(client: redis.Redis, prefix: str, n: int, timeout: float = 300) -> float:
    deadline = time.perf_counter() + timeout
    while int(client.get(prefix + "count") or 0) < n:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"fewer than {n} tasks ran in {timeout:.0f} s")
        time.sleep(0.002)
    return time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows: list[tuple[str, dict[str, float]]] = []
    for size in (1, 3):
        with RabbitCluster.on_free_ports(size=size) as cluster:
            for queue_type in ("classic", "quorum"):
                runs = [measure(cluster, queue_type, args.n) for _ in range(args.runs)]
                medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                where = "one node" if size == 1 else "3-node cluster"
                rows.append((f"{where}, {queue_type} queues", medians))
                print(f"{rows[-1][0]}: {medians}", file=sys.stderr, flush=True)
    print(render(rows, args.runs, args.markdown))


def render(rows: list[tuple[str, dict[str, Any]]], runs: int, markdown: bool) -> str:
    head = ["setup", "delay(), one at a time", "map() batch", "drain, one worker"]
    lines = [head] + [
        [name, *(f"{values[k]:,.0f}/s" for k in ("one", "batch", "drain"))] for name, values in rows
    ]
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(line) + " |" for line in lines[1:]]
        return f"Medians of {runs} run(s).\n\n" + "\n".join(out)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


if __name__ == "__main__":
    main()
