"""Logs that follow a task: any logger inside a task names it, in plain or JSON lines."""

from __future__ import annotations

import json
import signal
from pathlib import Path

L = "tests.apps.logged."


def lines_about(output: str, text: str) -> list[str]:
    return [line for line in output.splitlines() if text in line]


def test_json_lines_carry_the_task_of_every_record_logged_inside_it(
    app_from, start_command
) -> None:
    app = app_from("logged")
    worker = start_command(
        "--loglevel", "info", "--log-format", "json", "worker", "-A", "tests.apps.logged:app",
        "-Q", "logged",
    )  # fmt: skip
    worker.wait_for_output("consuming")
    sync = app.tasks[L + "charge"].delay(42)
    asynchronous = app.tasks[L + "charge_async"].delay(7)
    assert sync.get(timeout=15) == 42 and asynchronous.get(timeout=15) == 7
    worker.wait_for_output("charging 7 asynchronously")
    entries = [json.loads(line) for line in worker.output.splitlines() if line.startswith("{")]
    assert entries and all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    assert all(e["time"].endswith("+00:00") for e in entries)
    charged = next(e for e in entries if e["message"] == "charging 42")
    assert charged["logger"] == "myapp.billing" and charged["level"] == "WARNING"
    assert (charged["task_id"], charged["task_name"], charged["task_attempt"]) == (
        sync.id,
        L + "charge",
        1,
    )
    failed = next(e for e in entries if e["message"] == "the first card failed")
    assert failed["task_id"] == sync.id and "ValueError: card declined" in failed["exception"]
    in_loop = next(e for e in entries if e["message"] == "charging 7 asynchronously")
    assert in_loop["task_id"] == asynchronous.id
    consuming = next(e for e in entries if "consuming" in e["message"])
    assert "task_id" not in consuming  # outside a task: no task fields
    # No line per task at INFO: the success is logged at DEBUG.
    assert not [e for e in entries if "succeeded" in e["message"]]


def test_plain_lines_name_the_task_and_a_dictconfig_file_can_use_its_fields(
    app_from, start_command, tmp_path: Path
) -> None:
    app = app_from("logged")
    worker = start_command("worker", "-A", "tests.apps.logged:app", "-Q", "logged")
    worker.wait_for_output("consuming")
    handle = app.tasks[L + "charge"].delay(5)
    assert handle.get(timeout=15) == 5
    worker.wait_for_output("charging 5")
    (line,) = lines_about(worker.output, "charging 5")
    assert line.endswith(f"myapp.billing: charging 5 (task {L}charge[{handle.id}] attempt 1)")
    worker.signal(signal.SIGTERM)
    assert worker.wait(30) == 0

    log_file = tmp_path / "tasks.log"
    config = {
        "version": 1,
        "formatters": {"ids": {"format": "%(task_id)s %(levelname)s %(message)s"}},
        "filters": {},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(log_file), "formatter": "ids"}
        },
        "loggers": {"myapp": {"handlers": ["file"], "level": "WARNING"}},
    }
    config_path = tmp_path / "logging.json"
    config_path.write_text(json.dumps(config))
    start_command(
        "--log-config", str(config_path), "worker", "-A", "tests.apps.logged:app", "-Q", "logged"
    )
    handle = app.tasks[L + "charge"].delay(9)
    assert handle.get(timeout=15) == 9
    assert f"{handle.id} WARNING charging 9" in log_file.read_text()
