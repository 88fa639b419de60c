"""The Flask factory builds fresh state: one call's settings do not leak into the next."""

from __future__ import annotations

from webapp import create_app


def test_a_later_create_app_undoes_an_earlier_ones_settings(
    amqp_url: str, database_url: str
) -> None:
    base = {"TESTING": True, "DATABASE_URL": database_url}
    first = create_app({**base, "TASKCORE_STORE_RESULTS": False})
    assert first.extensions["taskcore"].settings.store_results is False
    second = create_app({**base, "TASKCORE_BROKER_URL": amqp_url})
    task_app = second.extensions["taskcore"]
    try:
        assert task_app.settings.store_results is True
        assert task_app.settings.broker_url == amqp_url
    finally:
        task_app.close()
