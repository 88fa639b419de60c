"""Order notifications written as Celery code: only the imports differ from Celery.

With Celery the imports would read ``from celery import Celery, Task, chain, shared_task``.
"""

from __future__ import annotations

import json
import os
import time

import redis

from taskcore import Task, chain, shared_task
from taskcore import TaskApp as Celery

app = Celery("celery_style")

PREFIX = os.environ.get("TEST_KEY_PREFIX", "taskcore-test:unset:")
_redis = redis.Redis.from_url(os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


class GatewayError(Exception):
    """The SMS gateway did not take the message."""


def gateway_send(order_id: int, failures: int) -> None:
    """A simulated SMS gateway that fails the first ``failures`` sends for an order."""
    sent = _redis.incr(f"{PREFIX}gateway:{order_id}")
    if sent <= failures:
        raise GatewayError(f"gateway timeout for order {order_id} (send {sent})")


@app.task(bind=True, queue="notify", max_retries=3, acks_late=True, serializer="json")
def send_order_sms(
    self: Task, order_id: int, failures: int = 0, retry_limit: int | None = None
) -> str:
    request = self.request
    _redis.rpush(
        f"{PREFIX}requests",
        json.dumps(
            {
                "id": request.id,
                "task": self.name,
                "retries": request.retries,
                "hostname": request.hostname,
                "delivery_info": request.delivery_info,
                "args": request.args,
                "kwargs": request.kwargs,
                "called_directly": request.called_directly,
            }
        ),
    )
    try:
        gateway_send(order_id, failures)
    except GatewayError as exc:
        raise self.retry(exc=exc, countdown=0.2, max_retries=retry_limit) from exc
    return f"order {order_id}: sms sent"


@app.task(bind=True, queue="notify")
def export_order_history(self: Task, customer_id: int, pages: int) -> dict[str, int]:
    time.sleep(0.2)  # look the customer up
    for page in range(1, pages + 1):
        self.update_state(
            state="PROGRESS",
            meta={"current": page, "total": pages, "customer": customer_id},
        )
        # Wait until the test has seen this page's progress (at most 4 s).
        _redis.blpop(f"{PREFIX}continue", timeout=4)
    return {"customer": customer_id, "pages": pages}


@shared_task
def order_total(prices: list[float]) -> float:
    return round(sum(prices), 2)


@shared_task(bind=True, queue="notify", default_retry_delay=0.1, max_retries=1)
def confirm_order(self: Task, order_id: int) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=GatewayError(f"order {order_id}: first try fails"))
    return f"order {order_id} confirmed after {self.request.retries} retry"


@app.task(queue="notify", rate_limit="20/s")  # global across workers (Celery's: per worker)
def receipt_line(total: float, order_id: int) -> str:
    return f"order {order_id}: {total:.2f}"


def checkout(order_id: int, prices: list[float]):
    """Total the order, then write its receipt line: a chain, as Celery code writes it."""
    return chain(order_total.s(prices), receipt_line.s(order_id)).apply_async()
