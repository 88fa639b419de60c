"""Task state, results and progress in Redis, with an expiry.

One hash per task, ``<namespace>:task:<id>``, whose fields are JSON values:
state, task, queue, worker, attempts, result, error, progress and timestamps.
Revoked ids live in the sorted set ``<namespace>:revoked`` (see revocations.py); every
key name is in keys.py. The worker writes through ``AsyncResultStore`` (a
listener of its state changes); handles and the CLI read through ``ResultStore``.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis

from .coalesce import Coalescer
from .errors import ConfigurationError
from .keys import RedisKeys
from .states import READY_STATES, State

if TYPE_CHECKING:
    from .settings import Settings

log = logging.getLogger("taskcore.worker")

#: Fields every status has; anything else a writer adds is kept in ``extra``.
_KNOWN = ("state", "task", "queue", "worker", "attempts", "result", "error", "progress")


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A snapshot of one task as Redis last heard of it."""

    id: str
    state: State = State.PENDING
    task: str | None = None
    queue: str | None = None
    worker: str | None = None
    attempts: int = 0
    result: Any = None
    #: ``{"type": ..., "message": ..., "traceback": ...}`` for FAILURE, DEAD and RETRY.
    error: dict[str, Any] | None = None
    #: ``{"current": ..., "total": ..., "message": ...}`` once the task reported progress.
    progress: dict[str, Any] | None = None
    #: Timestamps (Unix seconds) and whatever else was recorded, by name.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return self.state in READY_STATES

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for the API and ``--format json``."""
        return {
            "id": self.id,
            "state": str(self.state),
            "task": self.task,
            "queue": self.queue,
            "worker": self.worker,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "progress": self.progress,
            **self.extra,
        }


def encode(state: State, **fields: Any) -> dict[str, str]:
    """Hash fields for a state change: every value JSON-encoded, plus the state's timestamp."""
    now = float.__repr__(time.time())
    mapping = {name: to_json(value) for name, value in fields.items()}
    mapping["state"], at = _STATE_FIELDS[state]
    mapping["updated_at"] = mapping[at] = now
    return mapping


#: Each state's JSON and the name of its timestamp field, made once.
_STATE_FIELDS = {state: (json.dumps(str(state)), f"{state.lower()}_at") for state in State}
_json_string = json.encoder.encode_basestring_ascii  # what json.dumps uses for a str


def to_json(value: Any) -> str:
    """``json.dumps(value, default=str)``, the same text, with a shortcut for the strings,
    integers and finite floats that most state fields are (the worker writes several
    fields per state change, and json.dumps costs about 1.5 us a call)."""
    kind = type(value)
    if kind is str:
        return _json_string(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return json.dumps(value, default=str)


def decode(task_id: str, raw: dict[bytes | str, bytes | str]) -> TaskStatus:
    """Read a task hash back into a TaskStatus (PENDING when there is none)."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else key
        try:
            values[name] = json.loads(value)
        except ValueError:
            values[name] = value.decode() if isinstance(value, bytes) else value
    known = {name: values.pop(name) for name in _KNOWN if name in values}
    state = State(known.pop("state", State.PENDING))
    return TaskStatus(id=task_id, state=state, extra=values, **known)


#: KEYS: task hashes. ARGV[1]: seconds to keep them; then, for each key, its fields and
#: values joined by NUL bytes (JSON text never holds a raw NUL: ``to_json`` escapes it),
#: one argument per task instead of two per field for the client to pack.
_WRITE_STATES = """
for k = 1, #KEYS do
  local packed, items, from = ARGV[k + 1], {}, 1
  while true do
    local stop = string.find(packed, '\\0', from, true)
    if stop == nil then
      items[#items + 1] = string.sub(packed, from)
      break
    end
    items[#items + 1] = string.sub(packed, from, stop - 1)
    from = stop + 1
  end
  redis.call('HSET', KEYS[k], unpack(items))
  redis.call('EXPIRE', KEYS[k], ARGV[1])
end
return #KEYS
"""

#: What reading a status says when the app stores none.
RESULTS_OFF = (
    "task states and results are not stored: TASKCORE_STORE_RESULTS is off for this app; "
    "turn it on (the default) to use handle.get(), task status and idempotency keys"
)


class ResultStore:
    """Synchronous access for callers: read statuses, revoke, claim idempotency keys.

    With TASKCORE_STORE_RESULTS off (``enabled`` False) states are neither
    written nor read: reading one raises ConfigurationError.
    """

    def __init__(self, settings: Settings, client: redis.Redis, keys: RedisKeys) -> None:
        self.keys = keys
        self.expires = int(settings.result_expires)
        self.enabled = settings.store_results
        self.redis = client

    def require_enabled(self) -> None:
        """Raise ConfigurationError (saying how to fix it) when states are not stored."""
        if not self.enabled:
            raise ConfigurationError(RESULTS_OFF)

    def status(self, task_id: str) -> TaskStatus:
        self.require_enabled()
        return decode(task_id, self.redis.hgetall(self.keys.task(task_id)))

    def set_state(self, task_id: str, state: State, **fields: Any) -> None:
        if not self.enabled:
            return
        key = self.keys.task(task_id)
        with self.redis.pipeline() as pipe:
            pipe.hset(key, mapping=encode(state, **fields))
            pipe.expire(key, self.expires)
            pipe.execute()

    def revoke(self, task_id: str, mode: str) -> None:
        """Add a task id to the revocation list and tell every worker (revoke or terminate)."""
        now = time.time()
        expires = now + self.expires
        command = json.dumps({"revoke": task_id, "mode": mode, "expires": expires})
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.revoked, {task_id: expires})
            pipe.zremrangebyscore(self.keys.revoked, "-inf", now)
            pipe.publish(self.keys.control_channel, command)
            pipe.execute()


class AsyncResultStore:
    """The worker's asyncio access: write states, results, errors and progress.

    With TASKCORE_STORE_RESULTS off nothing is written and no state is known.
    """

    def __init__(self, settings: Settings, client: aioredis.Redis, keys: RedisKeys) -> None:
        self.keys = keys
        self.expires = int(settings.result_expires)
        self.enabled = settings.store_results
        self.redis = client
        self._writes: Coalescer[tuple[str, dict[str, str]]] = Coalescer(self._write)
        self._write_states = client.register_script(_WRITE_STATES)

    async def set_state(self, task_id: str, state: State, **fields: Any) -> None:
        """Record a state change; the writes of one loop iteration share a Redis round trip."""
        if self.enabled:
            await self._writes.add((self.keys.task(task_id), encode(state, **fields)))

    async def on_state(self, task_id: str, state: State, fields: dict[str, Any]) -> None:
        """State listener: record the change; Redis trouble is logged, never raised."""
        try:
            await self.set_state(task_id, state, **fields)
        except redis.RedisError as exc:
            log.error("could not record %s for task %s in Redis: %s", state, task_id, exc)

    async def _write(self, writes: list[tuple[str, dict[str, str]]]) -> None:
        # One script call for the batch: redis-py's per-command work (packing and
        # reading a reply) was the largest item of a state write when every task
        # cost an HSET and an EXPIRE of their own. The client retries a refused or
        # closed connection (about 10 s), so a restart or a Sentinel failover costs a
        # pause, not the states written meanwhile; a batch may run twice, harmlessly.
        keys: list[str] = []
        args: list[str | int] = [self.expires]
        for key, mapping in writes:
            keys.append(key)
            args.append("\0".join(itertools.chain.from_iterable(mapping.items())))
        await self._write_states(keys=keys, args=args)

    async def state_of(self, task_id: str) -> State | None:
        """The stored state of a task, or None when Redis has none."""
        if not self.enabled:
            return None
        state = await self.redis.hget(self.keys.task(task_id), "state")
        return State(json.loads(state)) if state else None

    async def result_of(self, task_id: str) -> Any:
        """The stored result of a task (None when there is none)."""
        if not self.enabled:
            return None
        result = await self.redis.hget(self.keys.task(task_id), "result")
        return json.loads(result) if result else None

    async def close(self) -> None:
        """Wait for the writes not yet sent (the client belongs to the worker)."""
        await self._writes.drain()
