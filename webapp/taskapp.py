"""The web app's one TaskApp, its queues and its routes: the layout users copy.

Tasks import ``app`` from here; ``webapp.tasks`` imports every workload's task module,
so ``taskcore worker -A webapp.tasks:app`` knows all of them.

Each workload has queues of its own, so one slow flow never holds up another, and a
worker group can be sized per queue. Where someone waits for a result, the queue has
a priority lane: send with ``priority=HIGH`` to jump the queue, ``LOW`` for bulk work.
"""

from __future__ import annotations

from taskcore import TaskApp

#: Priorities for the queues declared with ``max_priority`` below.
HIGH = 9
LOW = 1

#: Queues with options of their own (the rest are plain durable classic queues).
QUEUES = {
    # Grading is light and a learner is waiting for it.
    "grading": {"max_priority": 9},
    # Global limits across every worker (the console can change them at run time).
    "sms": {"rate_limit": "10/m"},
    "email": {"rate_limit": "30/m"},
    # Searches (someone waits) go first; exports and aggregates are bulk work.
    "reports": {"max_priority": 9},
}

#: Task-name patterns to queues, first match wins; a task's own ``queue=`` comes first.
ROUTES = {
    "webapp.orders.tasks.send_sms": "sms",
    "webapp.orders.tasks.send_email": "email",
    "webapp.orders.tasks.*": "notifications",
    "webapp.reports.tasks.*": "reports",
}

app = TaskApp("webapp", queues=QUEUES, routes=ROUTES)
