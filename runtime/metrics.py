"""Prometheus metrics of elt's runs, read from `elt_audit`, through prometheus-client.

One builder for every way out: the snapshot of `elt_audit` (runtime/metrics_snapshot.py:
the last run of each command, run counts, rows loaded and quarantined per source and
table, each source's last load and last success, the last transform's models and the
last test run's tests) becomes metric families of a `CollectorRegistry` made for the
occasion. At the end of every audited run (runtime/observe.py) the registry goes to a
node_exporter textfile
(`[metrics] textfile_dir`, `<dir>/elt.prom`, written atomically by prometheus-client)
and to a Pushgateway (`[metrics] pushgateway_url`); `elt metrics` prints it or serves it
to a scraper. The doctor's checks go to `<dir>/elt_doctor.prom` (and job `elt_doctor`).

Everything is rebuilt from the audit, not counted in the process: a counter such as
`elt_rows_loaded_total` is the sum over the audit's history, the same whichever machine
ran the load. When the audit cannot be read, the run's own figures are published and
`elt_audit_up` is 0.

Settings (`.dlt/config.toml` `[metrics]` or `ELT_METRICS__<KEY>`): `textfile_dir`,
`pushgateway_url`, `push_timeout_seconds` (2).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from runtime import settings
from runtime.metrics_snapshot import Snapshot, run_snapshot, snapshot_of
from runtime.secrets import redact

log = logging.getLogger("elt")

RUN_STATUSES = ("success", "failed", "error", "stopped", "abandoned", "running")
TEXTFILE = "elt.prom"
DOCTOR_TEXTFILE = "elt_doctor.prom"


# ---- metric families ----


class SnapshotCollector:
    """A prometheus-client collector yielding the families of one snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        return families(self.snapshot)


class AuditCollector:
    """Reads the audit anew on every scrape (`elt metrics --serve`)."""

    def __init__(self, warehouse: Any) -> None:
        self.warehouse = warehouse

    def collect(self) -> Iterator[Any]:
        try:
            snap = snapshot_of(self.warehouse)
        except Exception as exc:
            log.warning(f"metrics: audit not readable ({_first_line(exc)})")
            snap = Snapshot(audit_up=False)
        return families(snap)


def _filled(kind: str, name: str, doc: str, labels: list[str], values: dict) -> Any:
    """A family of `kind` (counter or gauge) with one sample per `values` item: label
    values (a tuple, or one value) -> number; datetimes become unix timestamps."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
        name, doc, labels=labels
    )
    for key, value in sorted(values.items()):
        number = value.timestamp() if isinstance(value, datetime) else value
        family.add_metric(list(key) if isinstance(key, tuple) else [key], number)
    return family


def families(snap: Snapshot) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    def gauge(name: str, doc: str, labels: list[str]) -> Any:
        return GaugeMetricFamily(name, doc, labels=labels)

    up = GaugeMetricFamily("elt_audit_up", "1 when elt_audit could be read for these metrics")
    up.add_metric([], 1.0 if snap.audit_up else 0.0)
    yield up
    yield _filled(
        "counter", "elt_runs", "Audited runs by command and final status",
        ["command", "status"], snap.runs_total,
    )  # fmt: skip

    status = gauge(
        "elt_run_status", "1 for the status of the command's last run", ["command", "status"]
    )
    exit_code = gauge("elt_run_exit_code", "Exit code of the command's last run", ["command"])
    duration = gauge("elt_run_duration_seconds", "Duration of the command's last run", ["command"])
    ended = gauge("elt_run_end_timestamp_seconds", "When the command's last run ended", ["command"])
    for run in snap.last_runs:
        command = run["command"]
        for known in RUN_STATUSES:
            status.add_metric([command, known], 1.0 if run["status"] == known else 0.0)
        if run.get("exit_code") is not None:
            exit_code.add_metric([command], run["exit_code"])
        seconds = run.get("seconds")
        if seconds is None and run.get("started_at") and run.get("ended_at"):
            seconds = (run["ended_at"] - run["started_at"]).total_seconds()
        if seconds is not None:
            duration.add_metric([command], seconds)
        if run.get("ended_at"):
            ended.add_metric([command], run["ended_at"].timestamp())
    yield from (status, exit_code, duration, ended)
    yield _filled(
        "gauge", "elt_run_last_success_timestamp_seconds",
        "When the command last ended successfully", ["command"], snap.last_success,
    )  # fmt: skip
    yield _filled(
        "counter", "elt_rows_loaded", "Rows loaded into raw, summed over the audit",
        ["source", "table"], snap.rows_total,
    )  # fmt: skip
    yield _filled(
        "counter", "elt_rows_quarantined",
        "Rows quarantined (table: the feed), summed over the audit",
        ["source", "table"], snap.quarantined_total,
    )  # fmt: skip

    rows = gauge(
        "elt_load_rows", "Rows of each table in the source's last load", ["source", "table"]
    )
    seconds_ = gauge("elt_load_duration_seconds", "Duration of the source's last load", ["source"])
    load_status = gauge(
        "elt_load_status", "1 for the status of the source's last load", ["source", "status"]
    )
    for source, last in sorted(snap.source_last.items()):
        for table, count in sorted((last.get("rows") or {}).items()):
            rows.add_metric([source, table], count)
        if last.get("seconds") is not None:
            seconds_.add_metric([source], float(last["seconds"]))
        for known in ("success", "stopped", "failed"):
            load_status.add_metric([source, known], 1.0 if last.get("status") == known else 0.0)
    yield from (rows, seconds_, load_status)
    yield _filled(
        "gauge", "elt_source_last_success_timestamp_seconds",
        "When the source last loaded successfully (freshness: time() minus this)",
        ["source"], snap.source_last_success,
    )  # fmt: skip

    yield from _dbt_families(snap.nodes)


def _dbt_families(nodes: list[dict[str, Any]]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    models = GaugeMetricFamily(
        "elt_dbt_models", "Models of the last transform by status", labels=["status"]
    )
    model_seconds = GaugeMetricFamily(
        "elt_dbt_model_duration_seconds",
        "Build time of each model in the last transform",
        labels=["model"],
    )
    model_status = GaugeMetricFamily(
        "elt_dbt_model_status",
        "1 for each model's status in the last transform",
        labels=["model", "status"],
    )
    tests = GaugeMetricFamily(
        "elt_dbt_tests", "Tests of the last `elt test` by status", labels=["status"]
    )
    freshness = GaugeMetricFamily(
        "elt_source_freshness_status",
        "1 for each source table's freshness status in the last test run",
        labels=["source", "table", "status"],
    )
    model_counts: dict[str, int] = {"success": 0, "error": 0, "skipped": 0}
    test_counts: dict[str, int] = {"pass": 0, "fail": 0, "warn": 0, "error": 0}
    for node in sorted(nodes, key=lambda n: n["name"]):
        kind, state = node["resource_type"], node["status"]
        if node["command"] == "transform" and kind == "model":
            model_counts[state] = model_counts.get(state, 0) + 1
            model_seconds.add_metric([node["name"]], float(node["execution_time"] or 0))
            model_status.add_metric([node["name"], state], 1.0)
        elif node["command"] == "test" and kind in ("test", "unit_test"):
            test_counts[state] = test_counts.get(state, 0) + 1
        elif node["command"] == "test" and kind == "source":
            source, _, table = node["name"].partition(".")
            freshness.add_metric([source, table, state], 1.0)
    if any(n["command"] == "transform" for n in nodes):
        for state, count in sorted(model_counts.items()):
            models.add_metric([state], count)
    if any(n["command"] == "test" for n in nodes):
        for state, count in sorted(test_counts.items()):
            tests.add_metric([state], count)
    yield from (models, model_seconds, model_status, tests, freshness)


def doctor_families(results: list[Any], seconds: float) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    checks = GaugeMetricFamily(
        "elt_doctor_check_status",
        "1 for each doctor check's status",
        labels=["check", "section", "source", "status"],
    )
    counts = GaugeMetricFamily("elt_doctor_checks", "Doctor checks by status", labels=["status"])
    tally = {"OK": 0, "WARN": 0, "FAIL": 0, "SKIP": 0}
    for result in results:
        state = str(result.status)
        tally[state] = tally.get(state, 0) + 1
        for known in ("OK", "WARN", "FAIL", "SKIP"):
            checks.add_metric(
                [result.id, result.section, result.source or "", known],
                1.0 if state == known else 0.0,
            )
    for state, count in tally.items():
        counts.add_metric([state], count)
    took = GaugeMetricFamily("elt_doctor_duration_seconds", "Duration of the last doctor run")
    took.add_metric([], seconds)
    ran = GaugeMetricFamily("elt_doctor_end_timestamp_seconds", "When the last doctor run ended")
    ran.add_metric([], datetime.now(UTC).timestamp())
    yield from (checks, counts, took, ran)


# ---- ways out ----


def registry_for(collector: Any) -> Any:
    """A registry of its own per publication: nothing leaks from the process's default."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


class _Families:
    def __init__(self, make: Any) -> None:
        self.make = make

    def collect(self) -> Iterator[Any]:
        return self.make()


def publish_run(warehouse: Any, run: Any, outcome: dict[str, Any]) -> None:
    """The audit's metrics after this run, to the configured textfile and Pushgateway."""
    textfile, gateway = (
        settings.path("metrics", "textfile_dir"),
        settings.setting("metrics", "pushgateway_url"),
    )
    if textfile is None and not gateway:
        return
    try:
        snap = snapshot_of(warehouse)
    except Exception as exc:
        log.warning(f"metrics: audit not readable, publishing this run only ({_first_line(exc)})")
        snap = run_snapshot(run, outcome)
    publish(registry_for(SnapshotCollector(snap)), TEXTFILE, "elt")


def publish_doctor(results: list[Any], seconds: float) -> None:
    publish(
        registry_for(_Families(lambda: doctor_families(results, seconds))),
        DOCTOR_TEXTFILE,
        "elt_doctor",
    )


def publish(registry: Any, filename: str, job: str) -> None:
    """Write the textfile and push to the gateway where configured; failures are logged."""
    from prometheus_client import write_to_textfile

    folder = settings.path("metrics", "textfile_dir")
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(folder / filename), registry)
        except OSError as exc:
            log.warning(
                f"metrics: textfile {folder / filename} not written ({exc.strerror or exc})"
            )
    gateway = settings.setting("metrics", "pushgateway_url")
    if gateway:
        try:
            push(str(gateway), job, registry)
        except Exception as exc:  # a gateway down never fails the run
            log.warning(f"metrics: push to the Pushgateway failed ({_first_line(exc)})")


def push(url: str, job: str, registry: Any) -> None:
    """PUT the registry to the Pushgateway (grouped by job and host), within the timeout;
    credentials in the URL (`https://user:password@host`) become basic auth."""
    from urllib.parse import unquote, urlsplit

    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import basic_auth_handler, default_handler

    parts = urlsplit(url)
    handler = default_handler
    if parts.username:
        user, password = unquote(parts.username), unquote(parts.password or "")
        url = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()

        def handler(**kwargs: Any) -> Any:
            return basic_auth_handler(**kwargs, username=user, password=password)

    push_to_gateway(
        url,
        job=job,
        registry=registry,
        grouping_key={"instance": socket.gethostname()},
        timeout=settings.number("metrics", "push_timeout_seconds", 2.0),
        handler=handler,
    )


def exposition(registry: Any) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(registry)


def _first_line(exc: BaseException) -> str:
    lines = (getattr(exc, "pgerror", None) or str(exc)).strip().splitlines()
    return redact(f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__)
