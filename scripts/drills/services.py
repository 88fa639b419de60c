"""Private instances of the services, for drills that stop and start them.

The shared RabbitMQ, Redis and PostgreSQL on loopback serve everybody's tests
and are never stopped; a drill that stops a service starts its own instance
here, on a free port of its own, and removes it (data and all) at the end:

* ``PrivateRedis``: a ``redis-server`` subprocess (no persistence unless asked);
* ``PrivatePostgres``: a cluster made with ``initdb`` in a temporary directory, run
  with ``pg_ctl`` as the ``postgres`` OS user;
* ``PrivateRabbit``: a RabbitMQ node ``drill<PORT>@localhost`` run as the ``rabbitmq``
  OS user, without plugins, its default vhost ``/`` open to guest/guest.

Each is a context manager: entering starts the service, leaving stops it and
deletes its files. ``stop()`` and ``start()`` in between are the drill's fault.
Ports are taken below the kernel's ephemeral range (where outgoing connections
pick their local ports), so nothing else takes one while its service is down.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import redis

#: Ports for private services: under the ephemeral range (32768+), clear of 25672
#: (the main broker's distribution port) and of RabbitMQ's CLI ports (35672+).
PORTS = range(21000, 25000)
#: A private RabbitMQ node's distribution port is its AMQP port + this.
DIST_OFFSET = 20000
PG_BIN = Path(os.environ.get("DRILL_PG_BIN", "/usr/lib/postgresql/15/bin"))
RABBIT_BIN = Path(os.environ.get("DRILL_RABBIT_BIN", "/usr/lib/rabbitmq/bin"))
RABBIT_HOME = "/var/lib/rabbitmq"  # the rabbitmq user's home: its Erlang cookie


class ServiceError(RuntimeError):
    """A private service did not start or stop when asked."""


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, offsets: tuple[int, ...] = (0,)) -> int:
    """A port of PORTS that is free, with ``port + offset`` free for every offset too."""
    candidates = list(PORTS)
    random.shuffle(candidates)
    for port in candidates:
        if all(port_is_free(port + offset) for offset in offsets):
            return port
    raise ServiceError(f"no free port in {PORTS}")


def _wait(check: object, what: str, timeout: float, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} within {timeout:.0f} s")
        time.sleep(interval)


def _owned_temp_dir(prefix: str, user: str) -> Path:
    """A temporary directory that ``user`` owns (the service runs as that user)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.chown(path, user, user)
    return path


# -- Redis ---------------------------------------------------------------------------


class PrivateRedis:
    """``redis-server`` on a free port; ``persist`` keeps data across stop/start (AOF)."""

    def __init__(self, *, persist: bool = False) -> None:
        self.persist = persist
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="private-redis-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        """Start the server on its port (the same one after a stop) and wait for PING."""
        appendonly = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else []
        self.starts += 1
        log = open(self.dir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                *(appendonly or ["--appendonly", "no"]),
                "--dir", str(self.dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        _wait(self.answers, f"redis-server on port {self.port} did not answer", 15)

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            raise ServiceError(f"redis-server exited {code} (logs in {self.dir})")
        client = redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self) -> None:
        """Shut the server down (clients see their connections closed) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # redis-server saves (AOF) and exits
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


# -- PostgreSQL ----------------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL cluster of its own (``initdb``), served on a free port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = _owned_temp_dir("private-postgres-", "postgres")
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> PrivatePostgres:
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop(mode="immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c shared_buffers=32MB -c max_connections=40"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
            "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends every session at once; ``immediate`` is a crash."""
        if not (self.data / "postmaster.pid").exists():
            return
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"
        )

    def _as_postgres(self, *command: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=self.dir,
        )
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise ServiceError(
                f"{' '.join(command[:1])} {command[-1]} failed: {done.stderr or done.stdout}\n{log}"
            )


# -- RabbitMQ ------------------------------------------------------------------------


class PrivateRabbit:
    """A RabbitMQ node of its own, ``drill<PORT>@localhost``, on a free AMQP port.

    Its distribution port is the AMQP port + 20000 (the main node's 25672 stays
    clear); it shares the machine's epmd and the rabbitmq user's Erlang cookie.
    Starting one takes several seconds (an Erlang VM and a fresh database).

    The knobs are for a cluster of such nodes (scripts/rabbit_cluster.py): a fixed
    ``port``, a ``nodename``, and a ``directory`` that outlives this object (a node
    started by one command and stopped by another finds its pid file there).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        nodename: str | None = None,
        directory: Path | None = None,
    ) -> None:
        self.port = port if port is not None else free_port(offsets=(0, DIST_OFFSET))
        self.dist_port = self.port + DIST_OFFSET
        self.node = nodename or f"drill{self.port}@localhost"
        # A directory of the caller's is made when the node is first launched.
        self.dir = directory or _owned_temp_dir("private-rabbitmq-", "rabbitmq")
        self._pid: int | None = None

    @property
    def url(self) -> str:
        """The node's default vhost as guest (allowed from loopback by the node's config)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int | None:
        """The Erlang VM's process id (from its pid file when another process started it)."""
        if self._pid is None:
            with contextlib.suppress(OSError, ValueError):
                self._pid = int((self.dir / "rabbit.pid").read_text().strip())
        return self._pid

    @pid.setter
    def pid(self, value: int | None) -> None:
        self._pid = value

    def _process(self) -> psutil.Process | None:
        """The node's Erlang VM while it runs (never another process that took its pid)."""
        pid = self.pid
        if pid is None:
            return None
        try:
            process = psutil.Process(pid)
            return process if process.name().startswith("beam") else None
        except psutil.Error:
            return None

    def _forget_process(self) -> None:
        self.pid = None
        (self.dir / "rabbit.pid").unlink(missing_ok=True)

    def __enter__(self) -> PrivateRabbit:
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self, timeout: float = 120) -> None:
        """Start the node (``rabbitmq-server -detached``) and wait until it runs."""
        self.launch()
        self.wait_started(timeout)

    def launch(self) -> None:
        """Start the node's Erlang VM and return at once (see ``wait_started``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.dir, "rabbitmq", "rabbitmq")
        self._forget_process()
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users.guest = true\n"  # guest may connect, from loopback only
        )
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("ERL_EPMD_ADDRESS=127.0.0.1\n")
        for name in ("rabbitmq.conf", "enabled_plugins", "rabbitmq-env.conf"):
            shutil.chown(self.dir / name, "rabbitmq", "rabbitmq")
        env = {
            "HOME": RABBIT_HOME,
            # Our own env file, so the machine's (which names the main node) is not read.
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "RABBITMQ_PID_FILE": str(self.dir / "rabbit.pid"),
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        started = subprocess.run(
            ["runuser", "-u", "rabbitmq", "--", "env", *(f"{k}={v}" for k, v in env.items()),
             str(RABBIT_BIN / "rabbitmq-server"), "-detached"],
            capture_output=True, text=True, timeout=60, check=False, cwd=self.dir,
        )  # fmt: skip
        if started.returncode != 0:
            raise ServiceError(f"rabbitmq-server -detached failed: {started.stderr}")

    def wait_started(self, timeout: float = 120) -> None:
        """Wait until the launched node runs RabbitMQ; note its VM's process id."""
        # await_startup fails at once while the node is not yet registered with epmd.
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl("await_startup", "--timeout", "60", timeout=90)
                break
            except (ServiceError, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        self.pid = int(self.ctl("eval", "list_to_integer(os:getpid()).").strip())

    def stop(self) -> None:
        """Stop the node (``rabbitmqctl stop``, else SIGKILL) and wait until its VM is gone."""
        process = self._process()  # first: the node deletes its pid file as it stops
        with contextlib.suppress(Exception):
            self.ctl("stop", timeout=60)
        if process is not None:
            with contextlib.suppress(psutil.Error):
                try:
                    process.wait(30)
                except psutil.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        self._forget_process()

    def kill(self) -> None:
        """SIGKILL the node's Erlang VM (no goodbye: its sockets reset) and wait for it."""
        process = self._process()
        if process is None:
            raise ServiceError(f"{self.node} has no running Erlang VM to kill")
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        self._forget_process()

    def running(self) -> bool:
        """True when the node answers and runs RabbitMQ."""
        try:
            self.ctl("await_startup", "--timeout", "1", timeout=30)
        except (ServiceError, subprocess.TimeoutExpired):
            return False
        return True

    def stop_app(self) -> None:
        """Stop the RabbitMQ application (the Erlang node stays): every client disconnected."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        self.ctl("start_app")
        self.ctl("await_startup", "--timeout", "60", timeout=90)

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """``rabbitmqctl -n NODE ARGS`` as the rabbitmq user; its output."""
        done = subprocess.run(
            ["runuser", "-u", "rabbitmq", "--", "env", f"HOME={RABBIT_HOME}",
             str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, *args],
            capture_output=True, text=True, timeout=timeout, check=False, cwd=RABBIT_HOME,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServiceError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout
