"""``taskcore beat``: fire periodic schedules, with several beats for high availability.

Every beat runs the same loop; a Redis lease (``SET NX PX`` renewed by its
holder) decides which one fires. If the leader dies, its lease expires and
another beat takes over within ``LEASE_SECONDS``. The leader publishes each
due fire time once: it claims the fire time's deterministic id in Redis
first, and records the last fire time per schedule so that a new leader, or
a restarted one, carries on where the last stopped (missed fire times are
handled by each schedule's ``missed`` policy).

Every beat, leader or not, also remembers the latest last fire time it has
seen per schedule. If Redis comes back without them (restarted without
persistence, or restored from an older snapshot), the leader writes back
what it remembers instead of starting afresh: fire times missed during the
outage then follow the ``missed`` policy like any others, and none is
enqueued twice although the claims were lost too. What a standing-by beat
remembers may be one tick old, so it also counts every fire time up to the
moment it found Redis gone as done: another beat may have enqueued it then.

Fire times are instants (Unix seconds, in Redis too): time zones and daylight saving
are handled where a schedule computes its next fire time (taskcore/cron.py), so a
beat only compares instants, whatever zone its machine is in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis

from .errors import PublishError
from .schedules import Schedule

if TYPE_CHECKING:
    from .app import TaskApp

log = logging.getLogger("taskcore.beat")

LEASE_SECONDS = 3.0
TICK = 0.2
#: A fire time's claim is kept this long: far longer than any overlap of two leaders.
CLAIM_SECONDS = 7 * 86400

# KEYS[1] lease key; ARGV: beat id, lease ms. 1 if this beat holds the lease now.
_LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Beat:
    """Runs the schedules of ``app`` while holding the leader lease."""

    def __init__(self, app: TaskApp, name: str | None = None) -> None:
        self.app = app
        self.id = name or f"beat-{os.getpid()}@{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self.keys = app.keys
        self.redis = app.redis
        self._lease = self.redis.register_script(_LEASE)
        self._release = self.redis.register_script(_RELEASE)
        self.leading = False
        #: Fire times this beat enqueued, by schedule (``taskcore_schedule_fires_total``).
        self.fires: Counter[str] = Counter()
        #: The latest last fire time per schedule this beat has read from Redis or written.
        self.known_last: dict[str, float] = {}
        #: When this beat first failed to reach Redis, while it cannot (None: it can).
        self.redis_lost_at: float | None = None
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Tick until ``stop_event`` is set; release the lease on the way out."""
        log.info("beat %s started with %d schedule(s)", self.id, len(self.app.schedules))
        try:
            while not self.stop_event.is_set():
                try:
                    self.tick(time.time())
                except redis.RedisError as exc:
                    if self.redis_lost_at is None:
                        self.redis_lost_at = time.time()
                    if self.leading:
                        log.error("beat %s lost Redis (%s): not firing", self.id, exc)
                    self.leading = False
                else:
                    self.redis_lost_at = None
                self.stop_event.wait(TICK)
        finally:
            with contextlib.suppress(redis.RedisError):
                self._release(keys=[self.keys.beat_leader], args=[self.id])
            log.info("beat %s stopped", self.id)

    def tick(self, now: float) -> None:
        """Renew or take the lease; if leading, publish every due fire time."""
        leading = bool(
            self._lease(keys=[self.keys.beat_leader], args=[self.id, int(LEASE_SECONDS * 1000)])
        )
        if leading != self.leading:
            log.info("beat %s %s", self.id, "is now the leader" if leading else "is standing by")
            self.leading = leading
        stored = {
            name.decode(): float(value)
            for name, value in self.redis.hgetall(self.keys.schedules_last).items()
        }
        for name, value in stored.items():
            self.known_last[name] = max(value, self.known_last.get(name, value))
        if not leading:
            return
        paused = {p.decode() for p in self.redis.smembers(self.keys.schedules_paused)}
        for schedule in self.app.schedules.values():
            if schedule.name not in paused:
                self._fire_due(schedule, now, stored.get(schedule.name))

    def _fire_due(self, schedule: Schedule, now: float, stored: float | None) -> None:
        last = self._last_fire(schedule, now, stored)
        if last is None:  # a new schedule: start from now, no back-fill
            self._set_last(schedule.name, now)
            return
        to_run, latest = schedule.due(last, now)
        for fire_time in to_run:
            if not self.enqueue(schedule, schedule.task_id(fire_time)):
                return  # try again next tick; the claims of those sent stop repeats
        if latest is not None:
            self._set_last(schedule.name, latest)

    def _last_fire(self, schedule: Schedule, now: float, stored: float | None) -> float | None:
        """The last fire time of ``schedule``: Redis's, unless Redis lost it or went back in
        time (then what this beat remembers, written back); None for a new schedule."""
        known = self.known_last.get(schedule.name)
        if known is None or (stored is not None and stored >= known):
            return stored
        if stored is None:
            # Every fire time enqueued before Redis lost it was due before this beat found
            # Redis gone (or, if it never did, before now): count those as done.
            gone_at = self.redis_lost_at if self.redis_lost_at is not None else now
            known = max(known, schedule.latest_at_or_before(gone_at, after=known))
        log.warning(
            "beat %s: Redis had %s as the last fire time of %s; carrying on from %s",
            self.id,
            "nothing" if stored is None else _stamp(stored),
            schedule.name,
            _stamp(known),
        )
        self._set_last(schedule.name, known)
        return known

    def _set_last(self, name: str, fire_time: float) -> None:
        self.redis.hset(self.keys.schedules_last, name, repr(fire_time))
        self.known_last[name] = fire_time

    def enqueue(self, schedule: Schedule, task_id: str) -> bool:
        """Claim ``task_id`` and publish it; False if publishing failed (claim released)."""
        claim = self.keys.schedule_claim(task_id)
        if not self.redis.set(claim, self.id, nx=True, ex=CLAIM_SECONDS):
            log.debug("%s was already enqueued", task_id)
            return True
        try:
            self.app.send_task(
                schedule.task,
                schedule.args,
                schedule.kwargs,
                queue=schedule.queue,
                task_id=task_id,
            )
        except PublishError as exc:
            self.redis.delete(claim)
            log.error("could not enqueue %s: %s", task_id, exc)
            return False
        self.fires[schedule.name] += 1
        log.info("enqueued %s (%s)", task_id, schedule.task)
        return True


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
