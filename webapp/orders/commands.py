"""``flask --app webapp orders seed N``: N sample orders, each confirmed like one from the page."""

from __future__ import annotations

import random
from decimal import Decimal

import click

from ..db import db, utcnow
from . import orders
from .models import Order
from .notify import NotQueued, queue_sends, record_event

NAMES = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Radia Perlman",
)
ITEMS = ("notebook", "pen", "stapler", "desk lamp", "mug", "backpack", "headphones", "cable")


@orders.cli.command("seed")
@click.argument("count", type=click.IntRange(1, 1000), default=10)
@click.option("--no-send", is_flag=True, help="Store the orders without queueing any send.")
def seed(count: int, no_send: bool) -> None:
    """Create COUNT sample orders and queue their confirmations (SMS and e-mail)."""
    ids: list[int] = []
    for _ in range(count):
        name = random.choice(NAMES)
        picked = random.sample(ITEMS, random.randint(1, 3))
        now = utcnow()
        order = Order(
            customer_name=name,
            phone=f"+4477009{random.randint(0, 99999):05d}",
            email=f"{name.split()[0].lower()}@example.com",
            items=", ".join(f"{random.randint(1, 3)} x {item}" for item in picked),
            amount=Decimal(random.randint(199, 19999)) / 100,
            status="placed",
            created_at=now,
            updated_at=now,
        )
        db.session.add(order)
        db.session.flush()
        ids.extend(n.id for n in record_event(db.session, order, "created"))
    db.session.commit()
    click.echo(f"{count} order(s) stored with {len(ids)} notification(s).")
    if no_send:
        return
    try:
        queued = queue_sends(db.session, ids)
    except NotQueued as exc:
        raise click.ClickException(
            f"{exc}; they stay queued and the re-drive sends them later"
        ) from exc
    click.echo(f"{queued} send(s) queued on sms (10/min) and email (30/min).")
