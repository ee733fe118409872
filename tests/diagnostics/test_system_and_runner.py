"""System checks against this machine with thresholds configured to trip, and the runner's
deadlines, failures and ordering."""

from __future__ import annotations

import threading

from doctor_support import check

from diagnostics.results import Skipped, Status, ok
from diagnostics.runner import Check, run_checks


def test_disk_with_room_is_ok_naming_the_path_and_free_space(tmp_path):
    result = check({"ELT_PIPELINES_DIR": str(tmp_path)}, "system/disk/pipelines")
    assert result.status == "OK"
    assert str(tmp_path) in result.detail and "free of" in result.detail


def test_a_nearly_full_disk_fails_with_the_threshold_configured_low(tmp_path):
    # no machine's disk is this full: a fail threshold of 100% free makes any disk "full"
    env = {"ELT_PIPELINES_DIR": str(tmp_path), "DOCTOR__DISK_FREE_FAIL_PERCENT": "100"}
    result = check(env, "system/disk/pipelines")
    assert result.status == "FAIL"
    assert result.hint == f"free space: `du -sh {tmp_path}/* | sort -h | tail`"


def test_disk_below_the_warn_threshold_warns(tmp_path):
    env = {"ELT_PIPELINES_DIR": str(tmp_path), "DOCTOR__DISK_FREE_WARN_PERCENT": "100"}
    assert check(env, "system/disk/pipelines").status == "WARN"


def test_the_disk_of_a_path_not_created_yet_is_its_parents(tmp_path):
    env = {"ELT_PIPELINES_DIR": str(tmp_path / "not" / "yet")}
    assert check(env, "system/disk/pipelines").status == "OK"


def test_memory_and_load_warn_past_their_thresholds():
    memory = check({"DOCTOR__MEMORY_AVAILABLE_WARN_PERCENT": "101"}, "system/memory")
    assert memory.status == "WARN" and memory.hint == "see what holds memory: `top -o %MEM`"
    load = check({"DOCTOR__LOAD_PER_CPU_WARN": "-1"}, "system/load")
    assert load.status == "WARN" and "per CPU" in load.detail
    cpu = check({"DOCTOR__CPU_BUSY_WARN_PERCENT": "0"}, "system/cpu")
    assert cpu.status == "WARN"


def test_cpu_memory_and_load_are_ok_under_permissive_thresholds():
    assert check({"DOCTOR__CPU_BUSY_WARN_PERCENT": "101"}, "system/cpu").status == "OK"
    assert check({"DOCTOR__MEMORY_AVAILABLE_WARN_PERCENT": "0"}, "system/memory").status == "OK"
    assert check({"DOCTOR__LOAD_PER_CPU_WARN": "1000"}, "system/load").status == "OK"


# --- the runner ---------------------------------------------------------------------------


def test_a_check_past_its_deadline_fails_and_the_others_still_report():
    release, finished = threading.Event(), threading.Event()

    def stuck():
        release.wait(30)
        finished.set()
        return ok("late")

    checks = [
        Check("t/stuck", "data", "stuck", stuck, timeout=0.3, timeout_hint="look at it"),
        Check("t/quick", "data", "quick", lambda: ok("fine")),
    ]
    results = run_checks(checks, timeout=5)
    assert not finished.is_set()  # the report did not wait for the stuck check
    release.set()
    assert [r.id for r in results] == ["t/stuck", "t/quick"]
    assert results[0].status == Status.FAIL and results[0].detail == "no answer within 0.3s"
    assert results[0].hint == "look at it"
    assert results[1].status == Status.OK


def test_a_check_that_raises_fails_with_one_line_and_keeps_the_error_for_debug():
    def broken():
        raise ValueError("unexpected\nsecond line")

    (result,) = run_checks([Check("t/broken", "config", "broken", broken)], timeout=5)
    assert result.status == Status.FAIL
    assert result.detail == "check error: ValueError: unexpected"
    assert "--debug" in result.hint and isinstance(result.error, ValueError)


def test_a_skipped_check_reports_skip_with_its_reason():
    def needs_the_warehouse():
        raise Skipped("not checked: the warehouse is unreachable", "fix it first")

    (result,) = run_checks([Check("t/skip", "data", "s", needs_the_warehouse)], timeout=5)
    assert (result.status, result.hint) == (Status.SKIP, "fix it first")


def test_details_are_redacted_of_known_secrets(monkeypatch):
    monkeypatch.setenv("SOURCES__PAYMENTS__TOKEN", "tok-shown-nowhere")
    (result,) = run_checks(
        [Check("t/leak", "data", "leak", lambda: ok("got tok-shown-nowhere back"))], timeout=5
    )
    assert result.detail == "got *** back"
