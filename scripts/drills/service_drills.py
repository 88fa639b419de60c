"""Drills that stop and start the services themselves (private instances, never the shared ones)."""

from __future__ import annotations

from collections.abc import Callable

from . import beats, broker_restart, cluster_failover, postgres_stop, redis_restart
from .report import Report

#: Drill name -> run(short) -> Report; merged into ``python -m scripts.drills``.
SERVICE_DRILLS: dict[str, Callable[[bool], Report]] = {
    "redis": redis_restart.run,
    "beats": beats.run,
    "postgres": postgres_stop.run,
    "broker": broker_restart.run,
    "cluster": cluster_failover.run,
}
