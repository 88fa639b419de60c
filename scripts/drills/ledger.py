"""What a drill sent and what ran, kept where the drill's faults cannot reach it.

The ledger lives in the machine's main Redis under a prefix of its own; a drill
that breaks Redis gives taskcore a private Redis server instead, so the
bookkeeping never depends on the service under test.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import redis

LEDGER_URL_ENV = "DRILL_LEDGER_URL"
LEDGER_PREFIX_ENV = "DRILL_LEDGER_PREFIX"


@dataclass(frozen=True)
class Reconciliation:
    """Every task sent, by what became of it. ``lost`` must be 0."""

    sent: int
    succeeded: int
    duplicates: int
    retried: int
    dead: int
    lost: int
    refused: int = 0  # sends that raised: never promised, so never owed

    def __str__(self) -> str:
        return (
            f"sent {self.sent}, succeeded {self.succeeded}, duplicates {self.duplicates}, "
            f"retried {self.retried}, dead {self.dead}, lost {self.lost}"
            + (f" (and {self.refused} send(s) raised, as promised)" if self.refused else "")
        )


class Ledger:
    """Sent ids, run counts and first-attempt failures of one drill."""

    def __init__(self, url: str, prefix: str) -> None:
        self.prefix = prefix
        self.redis = redis.Redis.from_url(url)

    @classmethod
    def from_env(cls) -> Ledger:
        """The ledger a drill handed to its worker processes through the environment."""
        return cls(
            os.environ.get(LEDGER_URL_ENV, "redis://127.0.0.1:6379/0"),
            os.environ.get(LEDGER_PREFIX_ENV, "drill:unset:"),
        )

    def env(self, url: str) -> dict[str, str]:
        """Environment variables that give a worker process this ledger."""
        return {LEDGER_URL_ENV: url, LEDGER_PREFIX_ENV: self.prefix}

    def sent(self, task_ids: Iterable[str]) -> None:
        """Record ids whose send returned (the broker confirmed them)."""
        ids = list(task_ids)
        if ids:
            self.redis.sadd(self.prefix + "sent", *ids)

    def refused(self, count: int = 1) -> None:
        """Count sends that raised (the caller knows they were not queued)."""
        self.redis.incrby(self.prefix + "refused", count)

    def ran(self, task_id: str) -> None:
        """Called by a drill task when its body completed."""
        self.redis.hincrby(self.prefix + "runs", task_id, 1)

    def failed_once(self, task_id: str) -> None:
        """Called by a drill task that fails on purpose to be retried."""
        self.redis.sadd(self.prefix + "retried", task_id)

    def sent_count(self) -> int:
        return int(self.redis.scard(self.prefix + "sent"))

    def ran_count(self) -> int:
        return int(self.redis.hlen(self.prefix + "runs"))

    def reconcile(self, dead_ids: Iterable[str]) -> Reconciliation:
        """Match what was sent against what ran and what was dead-lettered."""
        sent = {i.decode() for i in self.redis.smembers(self.prefix + "sent")}
        runs = {k.decode(): int(v) for k, v in self.redis.hgetall(self.prefix + "runs").items()}
        dead = set(dead_ids) - set(runs)
        succeeded = sent & set(runs)
        return Reconciliation(
            sent=len(sent),
            succeeded=len(succeeded),
            duplicates=sum(runs[i] - 1 for i in succeeded),
            retried=int(self.redis.scard(self.prefix + "retried")),
            dead=len(dead & sent),
            lost=len(sent - set(runs) - dead),
            refused=int(self.redis.get(self.prefix + "refused") or 0),
        )

    def delete(self) -> None:
        keys = list(self.redis.scan_iter(self.prefix + "*"))
        if keys:
            self.redis.delete(*keys)
        self.redis.close()
