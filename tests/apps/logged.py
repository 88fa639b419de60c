"""Tasks that log through loggers of their own (queue ``logged``)."""

from __future__ import annotations

import logging

from taskcore import TaskApp

app = TaskApp("tests")
billing = logging.getLogger("myapp.billing")


@app.task(queue="logged")
def charge(amount: int) -> int:
    billing.warning("charging %s", amount)
    try:
        raise ValueError("card declined")
    except ValueError:
        billing.exception("the first card failed")
    return amount


@app.task(queue="logged")
async def charge_async(amount: int) -> int:
    billing.warning("charging %s asynchronously", amount)
    return amount
