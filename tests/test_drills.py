"""The short fault drills (scripts/drills): real faults, then every task reconciled.

``make drills`` runs the same drills at full size; here each runs small enough
for the suite and must end with nothing lost.
"""

from __future__ import annotations

from scripts.drills import connection_cuts, kill_workers, kill_workflows, poison


def test_poison_messages_are_dead_lettered_with_a_reason_and_the_worker_goes_on() -> None:
    report = poison.run(short=True)
    assert report.reconciliation is not None
    assert report.reconciliation.lost == 0
    assert report.reconciliation.dead == len(poison.poisons())
    assert report.reconciliation.succeeded == 51
    reasons = {line.split(":")[0]: line for line in report.did}
    assert "'unknown-task'" in reasons["poison-unknown-task"]
    assert "'invalid-arguments'" in reasons["poison-bad-arguments"]
    for kind in ("not-json", "pickle", "gzip", "50mb", "no-task-name", "bad-retries-header"):
        assert "'undecodable'" in reasons[f"poison-{kind}"], reasons[f"poison-{kind}"]


def test_broker_connection_cuts_lose_no_confirmed_task() -> None:
    report = connection_cuts.run(short=True)
    result = report.reconciliation
    assert result is not None
    assert result.lost == 0
    assert result.sent + result.refused == report.attempts > 100
    assert result.succeeded == result.sent


def test_sigkilled_worker_processes_lose_no_task() -> None:
    report = kill_workers.run(short=True)
    result = report.reconciliation
    assert result is not None
    assert result.lost == 0
    assert result.succeeded == result.sent >= kill_workers.SHORT["tasks"]
    assert result.retried > 0
    assert f"{kill_workers.SHORT['kills']} worker processes killed" in report.did[0]


def test_sigkilled_workers_drop_no_chain_step_and_no_chord_callback() -> None:
    report = kill_workflows.run(short=True)
    result = report.reconciliation
    assert result is not None
    assert result.lost == 0
    size = kill_workflows.SHORT
    assert result.succeeded == result.sent == size["chains"] + size["chords"]
    assert "every result right" in report.did[0]
