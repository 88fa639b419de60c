"""``shared_task``: tasks in reusable modules that import no app, and the current app.

A shared task is registered with every TaskApp of the process, those that exist and
those created later (as in Celery). The object ``@shared_task`` returns stands for
the task of the *current app*: the TaskApp most recently created, configured
(``app.configure()``) or chosen with ``app.set_default()``. ``AsyncResult(id)``
without an app uses the same one.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Unpack

from .options import TaskOptions

if TYPE_CHECKING:
    from .app import SendOptions, TaskApp
    from .task import Task, TaskHandle

_lock = threading.RLock()
#: Every TaskApp of this process (weakly: a discarded app is forgotten).
_apps: weakref.WeakSet[TaskApp] = weakref.WeakSet()
#: Shared tasks by name: (function, decorator options).
_declared: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}
_current: weakref.ref[TaskApp] | None = None


def app_created(app: TaskApp) -> None:
    """Called by every new TaskApp: give it the shared tasks and make it current."""
    with _lock:
        _apps.add(app)
        for name, (fn, options) in _declared.items():
            app.task(fn, name=name, **options)
        make_current(app)


def make_current(app: TaskApp) -> None:
    """Make ``app`` the one shared tasks and ``AsyncResult`` use."""
    global _current
    _current = weakref.ref(app)


def current_app() -> TaskApp:
    """The current TaskApp; RuntimeError if none exists."""
    app = _current() if _current is not None else None
    if app is None:
        raise RuntimeError(
            "no TaskApp exists in this process: create one (app = TaskApp()) before "
            "sending a shared task or reading an AsyncResult"
        )
    return app


def shared_task(fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a task for every TaskApp, bare (``@shared_task``) or with the options of
    ``@app.task`` (``@shared_task(bind=True, queue="email")``)."""
    if fn is not None:
        return _declare(fn, **options)
    return lambda f: _declare(f, **options)


def _declare(fn: Callable[..., Any], *, name: str | None = None, **options: Any) -> SharedTask:
    TaskOptions.from_kwargs(options)  # a bad option fails here, even before any app exists
    task_name = name or f"{fn.__module__}.{fn.__qualname__}"
    with _lock:
        previous = _declared.get(task_name)
        _declared[task_name] = (fn, options)
        for app in list(_apps):
            registered = app.tasks.get(task_name)
            if previous is not None and registered is not None and registered.fn is previous[0]:
                del app.tasks[task_name]  # the module was imported again: the new one wins
            app.task(fn, name=task_name, **options)
    return SharedTask(task_name, fn)


class SharedTask:
    """What ``@shared_task`` returns: the current app's task of this name.

    Calling it runs the function here; every other attribute (``delay``,
    ``apply_async``, ``map``, ``request``, ``options``, ...) is the current app's Task's.
    """

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name = name
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<SharedTask {self.name}>"

    @property
    def task(self) -> Task:
        """This task as registered with the current app."""
        return current_app().tasks[self.name]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.task(*args, **kwargs)

    def delay(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """Queue a call through the current app; returns once the broker confirmed it."""
        return self.task.delay(*args, **kwargs)

    def apply_async(
        self,
        args: Any = (),
        kwargs: dict[str, Any] | None = None,
        **options: Unpack[SendOptions],
    ) -> TaskHandle:
        """``Task.apply_async`` through the current app."""
        return self.task.apply_async(args, kwargs, **options)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return getattr(self.task, attribute)
