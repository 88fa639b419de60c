"""The web app's one TaskApp and its queues; every workload's tasks register on it.

Tasks import ``app`` from here; ``webapp.tasks`` imports every workload's task module,
so ``taskcore worker -A webapp.tasks:app`` knows all of them.
"""

from __future__ import annotations

from taskcore import TaskApp

#: Queues with options of their own (the rest are plain durable classic queues).
QUEUES = {
    # Grading is light and someone is waiting for it: a priority lane inside the queue.
    "grading": {"max_priority": 9},
}

app = TaskApp("webapp", queues=QUEUES)
