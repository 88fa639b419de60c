"""A Redis master, one replica and three sentinels on this machine, as real processes.

    python -m scripts.redis_sentinel up      # ports 26400 (master), 26401 (replica),
                                             # 26410-26412 (sentinels); prints the settings
    python -m scripts.redis_sentinel status  # who is master now
    python -m scripts.redis_sentinel failover
    python -m scripts.redis_sentinel down

(`make sentinel-up` / `make sentinel-down`.) The tests start a group of their own on free
ports with ``SentinelGroup.on_free_ports()``. Every process is ``redis-server`` (a
sentinel is ``redis-server FILE --sentinel``), daemonized with a pid file in the group's
directory, so ``down`` from another shell stops what ``up`` started.

The sentinels vote with a quorum of 2, call a master down after 1 s without an answer
(``down-after-milliseconds``; Redis's default is 30 s) and may retry a failover after 5 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from scripts.drills.services import ServiceError, free_port

MASTER_NAME = "taskcore"
DEFAULT_DIR = Path(tempfile.gettempdir()) / "taskcore-sentinel"
DEFAULT_PORTS = (26400, 26401, (26410, 26411, 26412))
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


class SentinelGroup:
    """A master, a replica and three sentinels watching them under ``name``."""

    def __init__(
        self,
        directory: Path,
        master_port: int,
        replica_port: int,
        sentinel_ports: tuple[int, ...],
        name: str = MASTER_NAME,
    ) -> None:
        self.dir = directory
        self.data_ports = (master_port, replica_port)
        self.sentinel_ports = sentinel_ports
        self.name = name

    @classmethod
    def on_free_ports(cls, directory: Path | None = None) -> SentinelGroup:
        """A group on free ports (for tests), in a new temporary directory by default."""
        ports = [free_port() for _ in range(5)]
        while len(set(ports)) < 5:
            ports = [free_port() for _ in range(5)]
        folder = directory or Path(tempfile.mkdtemp(prefix="sentinel-"))
        return cls(folder, ports[0], ports[1], tuple(ports[2:]))

    # -- what clients use ----------------------------------------------------------

    @property
    def url(self) -> str:
        """``TASKCORE_REDIS_URL``: every sentinel, ``;``-separated (database 0)."""
        return ";".join(f"sentinel://127.0.0.1:{port}/0" for port in self.sentinel_ports)

    @property
    def env(self) -> dict[str, str]:
        return {"TASKCORE_REDIS_URL": self.url, "TASKCORE_REDIS_SENTINEL_MASTER": self.name}

    def master_port(self) -> int:
        """The port of the master the sentinels name now."""
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError):
                _host, master = self._sentinel(port).sentinel_get_master_addr_by_name(self.name)
                return int(master)
        raise ServiceError("no sentinel answers")

    # -- life cycle ----------------------------------------------------------------

    def __enter__(self) -> SentinelGroup:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> None:
        """Start the five processes and wait until every sentinel knows the replica and
        the other sentinels (before that, a failover cannot be agreed)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        master, replica = self.data_ports
        self._launch(f"redis-{master}", self._data_config(master, replica_of=None))
        self._launch(f"redis-{replica}", self._data_config(replica, replica_of=master))
        for port in self.sentinel_ports:
            self._launch(f"sentinel-{port}", self._sentinel_config(port, master), sentinel=True)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise ServiceError(f"the sentinel group did not settle within {timeout:.0f} s")
            time.sleep(0.2)

    def ready(self) -> bool:
        """Every sentinel sees the master up, the two other sentinels, and a replica up
        and in sync with the master (one a failover could promote)."""
        try:
            for port in self.sentinel_ports:
                sentinel = self._sentinel(port)
                state = sentinel.sentinel_master(self.name)
                if state.get("num-other-sentinels", 0) < 2:
                    return False
                if state.get("is_odown") or state.get("is_sdown"):
                    return False
                if not any(_promotable(r) for r in sentinel.sentinel_slaves(self.name)):
                    return False
            return True
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Stop every process this group's directory has a pid file for."""
        for pidfile in self.dir.glob("*.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
            pidfile.unlink(missing_ok=True)

    def kill(self, port: int) -> None:
        """SIGKILL the data server on ``port`` (the fault a drill or test injects)."""
        pidfile = self.dir / f"redis-{port}.pid"
        os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
        pidfile.unlink()

    def revive(self, port: int, timeout: float = 30) -> None:
        """Start the killed data server on ``port`` again, as a replica of today's master,
        and wait until the sentinels count it (a later failover needs a replica)."""
        master = self.master_port()
        self._launch(f"redis-{port}", self._data_config(port, replica_of=master))
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise ServiceError(f"the sentinels did not see {port} back within {timeout:.0f} s")
            time.sleep(0.2)

    def failover(self, timeout: float = 30) -> int:
        """Ask the sentinels to promote the replica now; returns the new master's port."""
        before = self.master_port()
        self._sentinel(self.sentinel_ports[0]).execute_command("SENTINEL FAILOVER", self.name)
        return self.wait_for_new_master(before, timeout)

    def wait_for_new_master(self, old_port: int, timeout: float = 30) -> int:
        """Wait until the sentinels name a master other than ``old_port`` and it takes writes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, ServiceError):
                port = self.master_port()
                if port != old_port:
                    role = redis.Redis(port=port, socket_timeout=1).execute_command("ROLE")
                    if role[0] in (b"master", "master"):
                        return port
            time.sleep(0.1)
        raise ServiceError(f"no new master within {timeout:.0f} s")

    # -- files and processes -------------------------------------------------------

    def _data_config(self, port: int, replica_of: int | None) -> str:
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            'save ""',
            "appendonly no",
            f"dir {self.dir}",
        ]
        if replica_of is not None:
            lines.append(f"replicaof 127.0.0.1 {replica_of}")
        return "\n".join(lines)

    def _sentinel_config(self, port: int, master: int) -> str:
        return "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                f"dir {self.dir}",
                f"sentinel monitor {self.name} 127.0.0.1 {master} 2",
                f"sentinel down-after-milliseconds {self.name} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {self.name} {FAILOVER_TIMEOUT_MS}",
            ]
        )

    def _launch(self, stem: str, config: str, sentinel: bool = False) -> None:
        path = self.dir / f"{stem}.conf"  # a sentinel rewrites its file: it must be writable
        pidfile = self.dir / f"{stem}.pid"
        path.write_text(
            f"{config}\ndaemonize yes\npidfile {pidfile}\nlogfile {self.dir / f'{stem}.log'}\n"
        )
        command = ["redis-server", str(path), *(["--sentinel"] if sentinel else [])]
        subprocess.run(command, check=True, capture_output=True)
        deadline = time.monotonic() + 10
        while not pidfile.exists():
            if time.monotonic() > deadline:
                raise ServiceError(f"{stem} did not start: see {self.dir / f'{stem}.log'}")
            time.sleep(0.05)

    @staticmethod
    def _sentinel(port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_connect_timeout=1, socket_timeout=1)


def _promotable(replica: dict[str, Any]) -> bool:
    return (
        not replica.get("is_sdown")
        and not replica.get("is_disconnected")
        and replica.get("master-link-status") == "ok"
    )


def default_group() -> SentinelGroup:
    master, replica, sentinels = DEFAULT_PORTS
    return SentinelGroup(DEFAULT_DIR, master, replica, sentinels)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    group = default_group()
    if command == "up":
        group.start()
        print(f"master on {group.master_port()}; use:")
        for key, value in group.env.items():
            print(f"export {key}='{value}'")
    elif command == "down":
        group.stop()
        print(f"stopped the group in {group.dir}")
    elif command == "failover":
        print(f"master now on {group.failover()}")
    elif command == "status":
        print(f"master on {group.master_port()}; ready: {group.ready()}")
    else:
        print("usage: python -m scripts.redis_sentinel up|down|status|failover", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
