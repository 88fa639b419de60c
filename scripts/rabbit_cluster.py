"""A RabbitMQ cluster of three nodes on this machine, as real Erlang VMs (no Docker).

    python -m scripts.rabbit_cluster up      # nodes r2, r3, r4 @localhost on AMQP ports
                                             # 5682-5684; prints TASKCORE_BROKER_URL
    python -m scripts.rabbit_cluster status  # which nodes run, and the cluster each sees
    python -m scripts.rabbit_cluster down    # stops them and deletes their data

(`make cluster-up` / `make cluster-down`.) The tests start a cluster of their own on free
ports with ``RabbitCluster.on_free_ports()``. Each node is a ``PrivateRabbit``
(scripts/drills/services.py): run as the ``rabbitmq`` OS user with the machine's Erlang
cookie, the machine's epmd, its distribution port at AMQP port + 20000 (25682-25684 here:
the main broker keeps 25672, and rabbitmqctl itself takes ports from 35672 up), and its
files (config, database, logs, pid file) in a directory of its own under the cluster's,
so ``down`` from another shell finds what ``up`` started. The shared broker on 5672 is
never touched.

Start-up: every node's VM boots at once, then the nodes after the first join it, also at
once (each ``stop_app``, ``join_cluster``, ``start_app``). On this machine (2 cores) three
nodes boot in about 10 s and join in about 4 s.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from scripts.drills.services import DIST_OFFSET, PrivateRabbit, ServiceError, free_port

DEFAULT_DIR = Path(tempfile.gettempdir()) / "taskcore-rabbit-cluster"
DEFAULT_FIRST_PORT = 5682
DEFAULT_SIZE = 3


def _each(work: Callable[[Any], object], items: Iterable[Any]) -> list[Any]:
    """``work(item)`` for every item at once (threads); the results, or the first error."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        return list(pool.map(work, items))


class RabbitCluster:
    """RabbitMQ nodes clustered together; node 0 is the one the others join."""

    def __init__(self, nodes: list[PrivateRabbit], directory: Path, *, temporary: bool) -> None:
        if not nodes:
            raise ValueError("a cluster needs at least one node")
        self.nodes = nodes
        self.dir = directory
        self.temporary = temporary
        #: Seconds the last start() took (VMs booted, nodes joined).
        self.start_seconds: float | None = None

    @classmethod
    def on_free_ports(cls, size: int = DEFAULT_SIZE) -> RabbitCluster:
        """A cluster on free ports (for tests) in a new temporary directory; nodes are
        named ``cluster<PORT>@localhost``."""
        directory = Path(tempfile.mkdtemp(prefix="rabbit-cluster-"))
        shutil.chown(directory, "rabbitmq", "rabbitmq")
        ports: list[int] = []
        while len(ports) < size:
            port = free_port(offsets=(0, DIST_OFFSET))
            if port not in ports:
                ports.append(port)
        nodes = [
            PrivateRabbit(
                port=port, nodename=f"cluster{port}@localhost", directory=directory / str(port)
            )
            for port in ports
        ]
        return cls(nodes, directory, temporary=True)

    @classmethod
    def fixed(
        cls,
        size: int = DEFAULT_SIZE,
        first_port: int = DEFAULT_FIRST_PORT,
        directory: Path = DEFAULT_DIR,
    ) -> RabbitCluster:
        """The cluster of ``make cluster-up``: ``r2@localhost`` on 5682, ``r3`` on 5683..."""
        nodes = []
        for port in range(first_port, first_port + size):
            name = f"r{port - first_port + 2}"
            nodes.append(
                PrivateRabbit(port=port, nodename=f"{name}@localhost", directory=directory / name)
            )
        return cls(nodes, directory, temporary=False)

    # -- what clients use ----------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """Each node's AMQP URL (its default vhost, as guest)."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """``TASKCORE_BROKER_URL``: every node, ``;``-separated."""
        return ";".join(self.urls)

    # -- life cycle ----------------------------------------------------------------

    def __enter__(self) -> RabbitCluster:
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 180) -> None:
        """Boot every node at once, then join the others to node 0; returns when every
        node runs and sees all the others."""
        began = time.monotonic()
        _each(lambda node: node.start(timeout), self.nodes)
        _each(self._join, self.nodes[1:])
        self.wait_clustered(timeout)
        self.start_seconds = time.monotonic() - began

    def _join(self, node: PrivateRabbit) -> None:
        node.stop_app()
        node.ctl("join_cluster", self.nodes[0].node)
        node.start_app()

    def start_node(self, index: int, timeout: float = 180) -> None:
        """Start node ``index`` again (after ``kill`` or a stop): it rejoins the cluster
        with the database it had; returns when every node sees it running."""
        self.nodes[index].start(timeout)
        self.wait_clustered(timeout)

    def kill(self, index: int) -> None:
        """SIGKILL node ``index``'s Erlang VM: the fault a drill or a test injects."""
        self.nodes[index].kill()

    def stop(self) -> None:
        """Stop every node (at once) and delete the cluster's files."""
        _each(lambda node: node.stop(), self.nodes)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- looking at it -------------------------------------------------------------

    def running_nodes(self, index: int) -> set[str]:
        """The nodes that node ``index`` sees running in its cluster (itself included)."""
        out = self.nodes[index].ctl("cluster_status", "--formatter", "json", timeout=30)
        return set(json.loads(out)["running_nodes"])

    def clustered(self) -> bool:
        """Every node runs and sees every node running."""
        names = {node.node for node in self.nodes}
        try:
            return all(seen == names for seen in _each(self.running_nodes, range(len(self.nodes))))
        except (ServiceError, ValueError, KeyError):
            return False

    def wait_clustered(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not self.clustered():
            if time.monotonic() > deadline:
                raise ServiceError(f"the cluster did not form within {timeout:.0f} s")
            time.sleep(0.5)

    def status(self) -> list[tuple[str, bool, set[str]]]:
        """Per node: its name, whether it runs, and the running nodes it sees."""
        rows = []
        for index, node in enumerate(self.nodes):
            try:
                rows.append((node.node, True, self.running_nodes(index)))
            except ServiceError:
                rows.append((node.node, False, set()))
        return rows


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    cluster = RabbitCluster.fixed()
    if command == "up":
        running = [up for _, up, _ in cluster.status()]
        if all(running):
            print("the cluster already runs (make cluster-down first to start it afresh)")
        elif any(running):  # start the nodes that are down again: they rejoin
            for index in (i for i, up in enumerate(running) if not up):
                cluster.start_node(index)
                print(f"started {cluster.nodes[index].node} again")
        else:
            cluster.start()
            print(f"{len(cluster.nodes)} nodes clustered in {cluster.start_seconds:.1f} s; use:")
        print(f"export TASKCORE_BROKER_URL='{cluster.url}'")
        print("export TASKCORE_QUEUE_TYPE=quorum")
    elif command == "down":
        cluster.stop()
        print(f"stopped the cluster and deleted {cluster.dir}")
    elif command == "status":
        for name, running, sees in cluster.status():
            print(f"{name}: {'running, sees ' + ', '.join(sorted(sees)) if running else 'down'}")
        print(f"TASKCORE_BROKER_URL='{cluster.url}'")
    else:
        print("usage: python -m scripts.rabbit_cluster up|down|status", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
