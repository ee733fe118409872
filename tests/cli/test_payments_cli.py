"""`elt load payments` and `elt demo` as cron and a new user run them: exit codes, JSON."""

from __future__ import annotations

import json

import psutil
import pytest
from support import run_elt

from demo import payments, shop
from demo.payments_api import PaymentsAPI, state_path

TOKEN = "tok-cli-5e1d0b77c2"
SMALL_PAGES = {
    "endpoint": {
        "data_selector": "data",
        "params": {"limit": 5},
        "paginator": {
            "type": "cursor",
            "cursor_path": "next_cursor",
            "cursor_param": "cursor",
            "has_more_path": "has_more",
        },
    },
}


@pytest.fixture
def api_env(elt_env, shop_url):
    shop.seed(shop_url, 30)
    payments.seed(shop_url)
    with PaymentsAPI(shop_url, TOKEN) as api:
        yield (
            api,
            {
                **elt_env,
                "SOURCES__PAYMENTS__BASE_URL": api.url,
                "SOURCES__PAYMENTS__TOKEN": TOKEN,
                "SOURCES__PAYMENTS__RESOURCE_DEFAULTS": json.dumps(SMALL_PAGES),
                "SOURCES__PAYMENTS__RATE_LIMIT_BUDGET_SECONDS": "2",
            },
        )


def test_a_rate_limited_load_exits_2_with_the_cause_in_the_error_and_the_json(api_env):
    api, env = api_env
    api.faults.fail(429, retry_after=3600, after=2, path="payments")
    result = run_elt("load", "payments", "--format", "json", env=env)
    assert result.returncode == 2, result.stderr
    payload = json.loads(result.stdout)
    assert (payload["status"], payload["cause"]) == ("error", "rate_limited")
    assert payload["error"]["cause"] == "unavailable"
    (source,) = payload["sources"]
    assert source["status"] == "stopped"
    assert source["stops"][0]["cause"] == "rate_limited"
    assert source["rows"]["payments"] == 10
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith(
        "error: load payments: rate_limited: `payments` answered 429 asking to wait 3600s"
    )
    assert "rerun `elt load payments` later" in line


def test_the_token_appears_in_no_output(api_env):
    api, env = api_env
    outputs = []
    ok = run_elt("load", "payments", env=env)
    assert ok.returncode == 0, ok.stderr
    outputs.append(ok)
    api.faults.fail(429, retry_after=3600, times=None)
    outputs.append(run_elt("--debug", "load", "payments", "--format", "json", env=env))
    api.faults.clear()
    wrong = "wrong-token-0c9e4a"
    unauthorized = run_elt(
        "--debug", "load", "payments", env={**env, "SOURCES__PAYMENTS__TOKEN": wrong}
    )
    assert unauthorized.returncode == 2
    assert "answered HTTP 401" in unauthorized.stderr
    outputs.append(unauthorized)
    for result in outputs:
        for token in (TOKEN, wrong):
            assert token not in result.stdout + result.stderr


def test_demo_runs_the_api_ticks_payments_and_stops_it(elt_env, tmp_path):
    # a project dir of its own: the demo API's state file lives under <project>/.elt
    env = {**elt_env, "ELT_PROJECT_DIR": str(tmp_path), "ELT_HOME": ""}
    started = json.loads(run_elt("demo", "--orders", "30", "--format", "json", env=env).stdout)
    pid = started["payments_api"]["pid"]
    try:
        assert started["payments_api"]["started"] is True
        first = run_elt("load", "payments", "--format", "json", env=env, check=True)
        assert json.loads(first.stdout)["sources"][0]["rows"]["payments"] == started["payments"]
        tick = json.loads(run_elt("demo", "--tick", "--format", "json", env=env).stdout)
        assert tick["payments_api"] == {**started["payments_api"], "started": False}
        second = run_elt("load", "payments", "--format", "json", env=env, check=True)
        rows = json.loads(second.stdout)["sources"][0]["rows"]
        assert rows["payments"] == tick["payments_inserted"] + tick["payments_updated"] > 0
    finally:
        stopped = json.loads(run_elt("demo", "--stop", "--format", "json", env=env).stdout)
    assert stopped["pid"] == pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert state_path(tmp_path / ".elt").exists()  # where it was: the doctor reads it
    after = run_elt("load", "payments", env=env)
    assert after.returncode == 2
    assert "the demo payments API is not running" in after.stderr
    assert "elt demo" in after.stderr
    # on-call: the stopped demo API is a connectivity FAIL with a hint, exit 1, not a config error
    doctor = run_elt(
        "doctor", "--only", "connectivity", "--source", "payments", "--format", "json", env=env
    )
    assert doctor.returncode == 1, doctor.stderr
    checks = {check["id"]: check for check in json.loads(doctor.stdout)["checks"]}
    assert checks["connectivity/source/payments"]["status"] == "FAIL"
    assert checks["connectivity/source/payments"]["hint"]
