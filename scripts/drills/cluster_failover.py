"""A RabbitMQ cluster and Redis through Sentinel under load: nodes and the Redis master die.

A 3-node cluster (scripts/rabbit_cluster.py) with every queue quorum
(``TASKCORE_QUEUE_TYPE=quorum``), Redis as a master, a replica and three sentinels
(scripts/redis_sentinel.py), all private to the drill. Two workers connect to
different nodes (their TASKCORE_BROKER_URL lists every node, each starting with its
own); the sender connects to a third. While the sender calls ``delay()``:

1. the node worker A is connected to is SIGKILLed and kept down for a while, then
   started again (it rejoins the cluster);
2. the node leading the drill's queue (the quorum leader) is SIGKILLed, kept down,
   started again;
3. the Redis master is SIGKILLed; the sentinels promote the replica.

After each fault the drill measures the longest pause in completed tasks; at the end
every task sent must have run (lost 0) and its state must be readable in Redis.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from typing import Any

from taskcore.states import State

from . import tasks
from .broker_restart import quiet
from .environment import MAIN_REDIS_URL, QUEUE, Drill, DrillFailed
from .report import Report
from .services import RABBIT_BIN, RABBIT_HOME

#: ``pace``: seconds between two sends (a delay() itself takes about 1-2 ms here).
#: ``sent``: keep sending after the faults until this many were sent.
FULL = {"down": 10.0, "between": 4.0, "pace": 0.002, "sent": 20_000}
SHORT = {"down": 4.0, "between": 1.0, "pace": 0.01, "sent": 0}


class ClusterDrill(Drill):
    """A Drill on a cluster's default vhost, with Redis through sentinels."""

    def __init__(self, cluster: Any, sentinels: Any) -> None:
        super().__init__("cluster")
        self.cluster = cluster
        self.sentinels = sentinels
        self.down: set[int] = set()

    def __enter__(self) -> ClusterDrill:
        super().__enter__()
        self.configure(broker_url=self.cluster.url, redis_url=self.sentinels.url)
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.redis_url = MAIN_REDIS_URL  # the sentinels' master goes with the drill
        super().__exit__(exc_type, *exc)

    def configure(self, **overrides: str) -> None:
        for key, value in overrides.items():
            setattr(self, key, value)
        self.app.configure(
            broker_url=self.broker_url,
            redis_url=self.redis_url,
            namespace=self.namespace,
            redis_sentinel_master=self.sentinels.name,
            queue_type="quorum",
        )

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(
            TASKCORE_REDIS_SENTINEL_MASTER=self.sentinels.name,
            TASKCORE_QUEUE_TYPE="quorum",
            **extra,
        )

    @property
    def direct_url(self) -> str:
        """A node that runs (the probe's reads of depths and dead letters go there)."""
        return self.cluster.urls[self._live()]

    def _live(self) -> int:
        """The index of the first node that runs."""
        return next(i for i in range(len(self.cluster.nodes)) if i not in self.down)

    def nodes_from(self, first: int) -> str:
        """Every node's URL, starting with node ``first``."""
        urls = self.cluster.urls
        return ";".join(urls[first:] + urls[:first])

    def kill_node(self, index: int) -> None:
        self.cluster.kill(index)
        self.down.add(index)

    def restart_node(self, index: int) -> float:
        """Start node ``index`` again; return once it is back in the cluster and every
        quorum queue has a member more than its quorum online (what an operator waits
        for before taking down another node: ``await_online_quorum_plus_one``)."""
        began = time.monotonic()
        self.cluster.start_node(index)
        self.down.discard(index)
        node = self.cluster.nodes[index]
        subprocess.run(
            ["runuser", "-u", "rabbitmq", "--", "env", f"HOME={RABBIT_HOME}",
             str(RABBIT_BIN / "rabbitmq-upgrade"), "-n", node.node,
             "await_online_quorum_plus_one", "-t", "120"],
            capture_output=True, text=True, timeout=150, check=True, cwd=RABBIT_HOME,
        )  # fmt: skip
        return time.monotonic() - began

    def leader_of(self, queue: str) -> int:
        """The index of the node leading ``queue`` (a quorum queue) now."""
        leader = self._queue_row(queue, "leader")
        return next(i for i, n in enumerate(self.cluster.nodes) if n.node == leader)

    def consumers(self, queue: str) -> int:
        return int(self._queue_row(queue, "consumers") or 0)

    def _queue_row(self, queue: str, column: str) -> Any:
        node = self.cluster.nodes[self._live()]
        out = node.ctl("list_queues", "name", column, "--formatter", "json", "-q")
        return next((row[column] for row in json.loads(out) if row["name"] == queue), None)


class Progress(threading.Thread):
    """Samples how many tasks have run, every 50 ms."""

    def __init__(self, drill: Drill) -> None:
        super().__init__(daemon=True)
        self.drill = drill
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), self.drill.ledger.ran_count()))
            time.sleep(0.05)

    def longest_pause(self, since: float, until: float) -> float:
        """The longest time between two completions in [since, until] (seconds)."""
        times = [t for t, _ in self._changes() if since <= t <= until]
        edges = [since, *times, until]
        return max(b - a for a, b in itertools.pairwise(edges))

    def _changes(self) -> list[tuple[float, int]]:
        changes, last = [], -1
        for t, count in self.samples:
            if count != last:
                changes.append((t, count))
                last = count
        return changes


class Sender(threading.Thread):
    """``delay()`` until stopped, every fifth task flaky (a retry through the cascade)."""

    def __init__(self, drill: Drill, pace: float) -> None:
        super().__init__(daemon=True)
        self.drill, self.pace = drill, pace
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            i += 1
            if not self.drill.send_one(tasks.flaky if i % 5 == 0 else tasks.work, i):
                time.sleep(0.1)  # no node answers yet: do not spin
            time.sleep(self.pace)


def run(short: bool) -> Report:
    from scripts.rabbit_cluster import RabbitCluster
    from scripts.redis_sentinel import SentinelGroup

    size = SHORT if short else FULL
    report = Report("RabbitMQ cluster (quorum queues) and Redis Sentinel: nodes killed")
    started = time.monotonic()
    with (
        quiet("aiormq", "aio_pika", "taskcore.broker"),  # this process's sender reconnects
        RabbitCluster.on_free_ports() as cluster,
        SentinelGroup.on_free_ports() as sentinels,
        ClusterDrill(cluster, sentinels) as drill,
    ):
        report.did.append(
            f"3 RabbitMQ nodes clustered in {cluster.start_seconds:.0f} s; Redis master, "
            "replica and 3 sentinels; every queue quorum"
        )
        drill.broker_url = drill.nodes_from(0)  # the sender starts on node 0
        drill.configure()
        drill.send_one(tasks.work, -1)  # declares the queues
        for first in (1, 2):  # worker A on node 1, worker B on node 2
            drill.start_worker(
                "-c", "8", TASKCORE_BROKER_URL=drill.nodes_from(first), DRILL_WORK_SECONDS="0.002"
            )
        _wait_for_consumers(drill, 2)
        progress = Progress(drill)
        progress.start()
        sender = Sender(drill, size["pace"])
        sender.start()
        _wait_ran(drill, 100)

        for fault in ("worker A's node", "quorum leader", "Redis master"):
            killed = old_master = None
            if fault == "worker A's node":
                killed = 1
                what = "node 1 (worker A's) SIGKILLed"
            elif fault == "quorum leader":
                killed = drill.leader_of(QUEUE)
                what = f"node {killed}, the leader of the drill's quorum queue, SIGKILLed"
            at = time.monotonic()
            if killed is not None:
                drill.kill_node(killed)
            else:
                old_master = sentinels.master_port()
                sentinels.kill(old_master)
                sentinels.wait_for_new_master(old_master)
                what = (
                    f"the Redis master SIGKILLed (replica promoted in "
                    f"{time.monotonic() - at:.1f} s)"
                )
            time.sleep(size["down"])
            pause = progress.longest_pause(at, time.monotonic())
            report.did.append(
                f"{what}: longest pause in completed tasks {pause:.1f} s while it was down "
                f"({drill.ledger.ran_count()} run so far)"
            )
            if pause >= 10:
                raise DrillFailed(f"{report.did[-1]}: 10 s or more (logs in {drill.logs})")
            if killed is not None:
                back = drill.restart_node(killed)
                report.did.append(f"node {killed} started again and rejoined in {back:.0f} s")
            else:
                sentinels.revive(old_master)
            time.sleep(size["between"])

        deadline = time.monotonic() + 600
        while drill.ledger.sent_count() < size["sent"] and time.monotonic() < deadline:
            time.sleep(0.5)
        sender.stop.set()
        sender.join(60)
        drill.wait_settled(timeout=300)
        progress.stop.set()
        unreadable = _states_not_success(drill)
        if unreadable:
            raise DrillFailed(
                f"{len(unreadable)} tasks ran but their state in Redis is not SUCCESS, e.g. "
                f"{unreadable[:3]}"
            )
        report.did.append("every task's state in Redis reads SUCCESS")
        report.reconciliation = drill.reconcile()
    report.seconds = time.monotonic() - started
    return report


def _wait_for_consumers(drill: ClusterDrill, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        consuming = drill.consumers(QUEUE)
        if consuming >= count:
            return
        if time.monotonic() > deadline:
            raise DrillFailed(f"only {consuming} of {count} workers consume (logs in {drill.logs})")
        time.sleep(0.2)


def _wait_ran(drill: Drill, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while drill.ledger.ran_count() < count:
        if time.monotonic() > deadline:
            raise DrillFailed(f"fewer than {count} tasks ran in {timeout:.0f} s ({drill.logs})")
        time.sleep(0.1)


def _states_not_success(drill: ClusterDrill) -> list[str]:
    """Sent task ids whose state in Redis is not SUCCESS (read through the sentinels)."""
    ids = [i.decode() for i in drill.ledger.redis.smembers(drill.ledger.prefix + "sent")]
    keys = drill.app.keys
    with drill.app.redis.pipeline(transaction=False) as pipe:
        for task_id in ids:
            pipe.hget(keys.task(task_id), "state")
        states = pipe.execute()
    return [
        task_id
        for task_id, state in zip(ids, states, strict=True)
        if state is None or json.loads(state) != str(State.SUCCESS)
    ]
