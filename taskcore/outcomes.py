"""How a delivered message is settled once its outcome is known.

A plain ack is enough when the task is done. Every other outcome moves the
message somewhere first: a retry goes round the delay cascade, a failure to
``<queue>.dead``, a message waiting for its rate-limit slot round the cascade,
a replayed dead letter back to its work queue. All four go through
``forward``: publish a copy, wait for the broker's confirm, then ack the
original. A chain step's or chord member's success hands over the same way
(``publish_then_ack``, under ``forward``): the next message is confirmed before
the step is acked. If it is not confirmed the original goes back to the broker
(requeued), so a message is never acknowledged before what follows it is held.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from .dead_letters import dead_letter_headers, short_traceback
from .errors import PublishError
from .message import (
    H_ETA,
    H_RETRIES,
    Envelope,
    republish_headers,
    republish_properties,
    retries_of,
    to_ms,
)
from .states import State
from .topology import dead_queue
from .workflows import H_WORKFLOW, error_callback, steps_after, workflow_fields

if TYPE_CHECKING:
    from .broker import BrokerClient
    from .listeners import StateChanges
    from .message import ReceivedMessage, TaskMessage
    from .options import TaskOptions
    from .topology import Topology

log = logging.getLogger("taskcore.worker")

#: Dead-letter reasons that mean the task ran and failed (FAILURE); the rest are DEAD.
FAILURE_REASONS = {"failed", "max-retries-exceeded"}
#: Seconds to wait before requeueing a message whose copy the broker did not confirm.
PAUSE_AFTER_REFUSAL = 1.0


async def settle(message: ReceivedMessage, how: str) -> None:
    """``"ack"`` or ``"requeue"``; if the channel is gone, say so (the broker redelivers)."""
    try:
        if how == "ack":
            await message.ack()
        else:
            await message.nack(requeue=True)
    except Exception as exc:
        log.warning(
            "could not %s message %s (%s); the broker will deliver it again",
            how,
            message.message_id,
            exc,
        )


async def forward(
    client: BrokerClient,
    message: ReceivedMessage,
    address: tuple[str, str],
    headers: dict[str, Any],
    *,
    queues: Iterable[str] = (),
    before_ack: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Publish a copy of ``message`` with ``headers`` to ``address`` (exchange, routing key),
    then ack the original; False if the copy was not confirmed (the original is requeued).

    ``queues`` are work queues declared first (a replay's destination);
    ``before_ack`` runs between the confirm and the ack (recording the new state).
    """
    exchange, routing_key = address
    envelope = Envelope(exchange, routing_key, message.body, republish_properties(message, headers))
    return await publish_then_ack(client, message, envelope, queues=queues, before_ack=before_ack)


async def publish_then_ack(
    client: BrokerClient,
    message: ReceivedMessage,
    envelope: Envelope,
    *,
    queues: Iterable[str] = (),
    before_ack: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Publish ``envelope`` (a copy of ``message``, or what comes after it), wait for the
    confirm, then ack ``message``; False if not confirmed (``message`` is requeued)."""
    try:
        await client.publish([envelope], queues)
    except PublishError as exc:
        log.error("could not settle message %s: %s; requeueing it", message.message_id, exc)
        await asyncio.sleep(PAUSE_AFTER_REFUSAL)  # do not spin on a broker that keeps refusing
        await settle(message, "requeue")
        return False
    if before_ack is not None:
        await before_ack()
    await settle(message, "ack")
    return True


class Outcomes:
    """Retries and dead letters for one worker: where they go and what state they record."""

    def __init__(self, client: BrokerClient, topology: Topology, states: StateChanges) -> None:
        self.client = client
        self.topology = topology
        self.states = states

    async def retry_or_fail(
        self, message: ReceivedMessage, call: TaskMessage, options: TaskOptions, error: Exception
    ) -> None:
        """Apply the task's retry policy to an error it raised."""
        if isinstance(error, options.autoretry_for):
            await self.retry(message, call, options, None, error)
        else:
            await self.dead(message, call.queue, "failed", error)

    async def retry(
        self,
        message: ReceivedMessage,
        call: TaskMessage,
        options: TaskOptions,
        countdown: float | None,
        error: BaseException,
        max_retries: int | None = None,
    ) -> None:
        """Send the message round again through the delay cascade, or dead-letter it.

        ``countdown`` (None: the task's backoff) is the wait; ``max_retries`` (None:
        the task's) the limit; ``error`` is recorded if the retries have run out.
        """
        limit = options.max_retries if max_retries is None else max_retries
        if call.retries >= limit:
            await self.dead(message, call.queue, "max-retries-exceeded", error)
            return
        delay = countdown if countdown is not None else options.retry_delay(call.retries)
        headers = republish_headers(
            message, **{H_RETRIES: call.retries + 1, H_ETA: to_ms(time.time() + delay)}
        )

        log.warning(
            "task %s[%s] retry %d/%d in %.2fs: %r",
            call.task,
            call.id,
            call.retries + 1,
            limit,
            delay,
            error,
        )
        # RETRY before the copy is sent: once sent, the next attempt may run (and record
        # SUCCESS) before a RETRY recorded after the confirm, which would then stick. If
        # the copy is refused, the original is requeued: it runs again all the same.
        await self.states.report_call(
            call, State.RETRY, error=error_fields(error), retry_in=round(delay, 3)
        )
        await forward(self.client, message, self.topology.address(call.queue, delay), headers)

    async def dead(
        self, message: ReceivedMessage, queue: str, reason: str, error: BaseException
    ) -> None:
        """Publish the message to ``<queue>.dead`` with the reason headers, then ack it."""
        headers = dead_letter_headers(
            message, reason=reason, error=error, queue=queue, worker=self.states.worker
        )

        async def recorded() -> None:
            log.warning(
                "message %s (%s) dead-lettered to %s: %s: %s",
                message.message_id,
                message.type,
                dead_queue(queue),
                reason,
                error,
            )
            if message.message_id:
                await self.states.report(
                    message.message_id,
                    State.FAILURE if reason in FAILURE_REASONS else State.DEAD,
                    task=message.type,
                    queue=queue,
                    error=error_fields(error),
                    reason=reason,
                    attempts=retries_of(message) + 1,
                    **workflow_fields((message.headers or {}).get(H_WORKFLOW)),
                )
            await self._stop_chain(message, reason)
            await self._send_error_callback(message)

        await forward(
            self.client,
            message,
            (self.topology.dead_exchange, dead_queue(queue)),
            headers,
            before_ack=recorded,
        )

    async def hand_over(self, message: ReceivedMessage, following: TaskMessage) -> bool:
        """Publish the chain step (or chord callback) after ``message``'s task, then ack
        ``message``; False if not confirmed (``message`` is requeued; its redelivery
        hands over)."""
        envelope = self.topology.envelope(following)
        return await publish_then_ack(self.client, message, envelope, queues=[following.queue])

    async def _send_error_callback(self, message: ReceivedMessage) -> None:
        callback = error_callback(message.headers or {}, message.message_id or "")
        if callback is None:
            return
        envelope = self.topology.envelope(callback)
        try:
            await self.client.publish([envelope], [callback.queue])
        except PublishError as exc:  # the dead letter is kept; only the callback is lost
            log.error(
                "could not send link_error %s for %s: %s", callback.task, message.message_id, exc
            )

    async def _stop_chain(self, message: ReceivedMessage, reason: str) -> None:
        # A replayed dead letter still carries its chain: replaying it resumes the chain.
        for step in steps_after(message.headers or {}):
            await self.states.report(
                step["id"],
                State.FAILURE,
                task=step["task"],
                queue=step["queue"],
                **workflow_fields(step.get("workflow")),
                error={
                    "type": "taskcore.ChainStopped",
                    "message": f"not run: an earlier step, {message.type}[{message.message_id}], "
                    f"went to the dead-letter queue ({reason})",
                },
                reason="chain-stopped",
            )


def error_fields(error: BaseException) -> dict[str, Any]:
    """An error as stored with a state: type, message and a short traceback."""
    return {
        "type": f"{type(error).__module__}.{type(error).__qualname__}",
        "message": str(error),
        "traceback": short_traceback(error),
    }
