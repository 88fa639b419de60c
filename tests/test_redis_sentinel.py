"""Redis through Sentinel: a real master, replica and three sentinels (scripts/redis_sentinel.py)
on free ports; a worker and a caller that name the sentinels, across a failover."""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from scripts.redis_sentinel import SentinelGroup
from taskcore import ConfigurationError, Settings, State
from taskcore.beat import LEASE_SECONDS
from taskcore.redis_clients import sentinel_address, sync_client

from .test_rate_limits import max_in_window
from .test_schedules import fire_second, start_two_beats
from .worker_log import events, wait_events

F = "tests.apps.features."


@pytest.fixture(scope="module")
def sentinels() -> Iterator[SentinelGroup]:
    group = SentinelGroup.on_free_ports()
    try:
        group.start()
        yield group
    finally:
        group.stop()
        shutil.rmtree(group.dir, ignore_errors=True)


@pytest.fixture
def task_env(task_env: dict[str, str], sentinels: SentinelGroup) -> dict[str, str]:
    """This test's environment, with Redis reached through the sentinels."""
    return {**task_env, **sentinels.env}


def test_sentinel_urls_parse_and_mistakes_say_what_to_set() -> None:
    settings = Settings(
        redis_url="sentinel://:s3cret@10.0.0.1:26379/2; sentinel://10.0.0.2",
        redis_sentinel_master="main",
    )
    address = sentinel_address(settings)
    assert address.sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26379)]
    assert address.master == "main" and address.options == {"password": "s3cret", "db": 2}
    with pytest.raises(ConfigurationError, match="TASKCORE_REDIS_SENTINEL_MASTER"):
        sync_client(Settings(redis_url="sentinel://127.0.0.1:26379/0"))
    with pytest.raises(ConfigurationError, match="mixes sentinel:// with redis://"):
        sync_client(
            Settings(
                redis_url="sentinel://127.0.0.1:26379;redis://127.0.0.1:6379",
                redis_sentinel_master="main",
            )
        )
    with pytest.raises(ConfigurationError, match="not a database number"):
        sentinel_address(Settings(redis_url="sentinel://h:1/zero", redis_sentinel_master="m"))


def test_results_and_limits_work_through_a_failover(
    app_from: Any, start_worker: Any, sentinels: SentinelGroup
) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    add = app.tasks[F + "add"]
    before = [add.delay(i, 1) for i in range(50)]
    assert [h.get(timeout=20) for h in before] == [i + 1 for i in range(50)]
    old_master = sentinels.master_port()

    new_master = sentinels.failover()

    assert new_master != old_master
    # The caller's and the worker's clients find the new master on their own.
    after = [add.delay(i, 2) for i in range(50)]
    assert [h.get(timeout=30) for h in after] == [i + 2 for i in range(50)]
    # What was written before the failover reached the replica that is master now.
    assert {h.state for h in before} == {State.SUCCESS}
    assert app.redis.connection_pool.get_master_address()[1] == new_master


def test_a_killed_master_costs_seconds_not_tasks(
    app_from: Any, start_worker: Any, sentinels: SentinelGroup
) -> None:
    app = app_from("features")
    start_worker("features", "-Q", "feat")
    add = app.tasks[F + "add"]
    assert add.delay(1, 1).get(timeout=20) == 2
    old_master = sentinels.master_port()
    sent_before = [add.delay(i, 0) for i in range(20)]
    [h.get(timeout=20) for h in sent_before]

    killed_at = time.monotonic()
    sentinels.kill(old_master)  # kill -9: no goodbye to clients or sentinels
    during = [add.delay(i, 10) for i in range(20)]  # sent while Redis has no master
    new_master = sentinels.wait_for_new_master(old_master, timeout=30)
    promoted_in = time.monotonic() - killed_at

    assert [h.get(timeout=30) for h in during] == [i + 10 for i in range(20)]
    later = add.delay(5, 5)
    assert later.get(timeout=20) == 10
    assert sentinels.master_port() == new_master
    # 1 s to call the master down, then the vote: well under the retries' ~5 s.
    assert promoted_in < 10, promoted_in
    sentinels.revive(old_master)  # as a replica: the group can fail over again


def test_a_rate_limit_holds_across_a_failover(
    app_from: Any, start_worker: Any, sentinels: SentinelGroup, rdb: Any, redis_prefix: str
) -> None:
    app = app_from("limited")
    app.tasks["tests.apps.limited.twenty_per_second"].map(range(120))  # 6 s at 20/s
    start_worker("limited", "-Q", "limited", "--processes", "2")
    wait_events(rdb, redis_prefix, "start", 40, timeout=20)
    sentinels.failover()  # the reservations (one key per limit) move to the new master
    starts = [e["at"] for e in wait_events(rdb, redis_prefix, "start", 120, timeout=30)]
    assert sorted(e["i"] for e in wait_events(rdb, redis_prefix, "start", 120)) == list(range(120))
    # As without a failover (tests/test_rate_limits.py): at most the limit plus the
    # bucket (1) in any second of tokens; a start's stamp lags its token by < 0.1 s.
    assert max_in_window(starts, window=0.9) <= 20 + 1


def test_the_beat_lease_costs_no_more_than_its_ttl_when_the_master_dies(
    app_from: Any,
    start_worker: Any,
    start_command: Any,
    sentinels: SentinelGroup,
    rdb: Any,
    redis_prefix: str,
) -> None:
    """The Redis master and the leading beat die together: the standing-by beat leads
    within the lease's TTL of the new master, and no fire time is enqueued twice."""
    leader, follower = start_two_beats(app_from, start_worker, start_command)
    wait_events(rdb, redis_prefix, "tick", 4, timeout=20)
    old_master = sentinels.master_port()

    killed_at = time.time()
    sentinels.kill(old_master)
    leader.signal(signal.SIGKILL)
    sentinels.wait_for_new_master(old_master, timeout=30)
    promoted_at = time.time()
    follower.wait_for_output("is now the leader", timeout=LEASE_SECONDS + 10)
    leads_at = time.time()
    ticks_before = len(events(rdb, redis_prefix, "tick"))
    wait_events(rdb, redis_prefix, "tick", ticks_before + 3, timeout=15)
    sentinels.revive(old_master)

    ids = [t["id"] for t in events(rdb, redis_prefix, "tick")]
    assert all(n == 1 for n in Counter(ids).values()), Counter(ids).most_common(3)
    # The dead leader's lease reached the replica and lapses there: the follower waits out
    # at most its TTL (plus one retry pause and a tick), not Redis's outage again.
    assert leads_at - promoted_at < LEASE_SECONDS + 1.5, (killed_at, promoted_at, leads_at)
    fired = sorted(fire_second(i) for i in ids)
    after = [s for s in fired if s > leads_at - 1]
    assert after == [after[0] + k for k in range(len(after))]  # every second again, once
