"""Alerts: one JSON message per failure kind of a run, to the configured webhooks.

A run that ends failed, in error or stopped sends what on-call needs to act, without
opening a terminal: which command and run, the source or model, the cause and the next
command. Kinds: `quarantine_breached` (a feed quarantined more than its share),
`source_stale` (a source's freshness failed in `elt test`), `test_failed` (dbt tests
failed), else `run_failed` / `run_error` / `run_stopped` for the run as a whole.

The message is Slack-compatible (`text`) and carries the fields as data too. Never a
secret (every field goes through runtime/secrets.py `redact`, and the webhook URLs,
themselves secrets, are never logged) and never a row value (tests are named with their
failing-row count, not dbt's message). Identical alerts within `dedupe_window_seconds`
are sent once: the first sender claims the alert in `elt_audit.alerts` (one atomic
upsert, so concurrent runs agree), or in a file beside the logs when the warehouse is
down. Each webhook gets `max_attempts` tries of `timeout_seconds`, all within
`budget_seconds`: a dead webhook costs the run a few seconds at most, never its outcome.

Settings: `[alerts] webhook_urls` (a list; a secret: `.dlt/secrets.toml` or
`ELT_ALERTS__WEBHOOK_URLS`, comma-separated or a JSON list), and in `.dlt/config.toml`
`timeout_seconds` (2), `max_attempts` (2), `budget_seconds` (5),
`dedupe_window_seconds` (3600).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime import engines, runlog, settings
from runtime.errors import EltError
from runtime.secrets import redact

log = logging.getLogger("elt")

SCHEMA = "elt_audit"
DDL = f"""
create table if not exists {SCHEMA}.alerts (
    fingerprint text primary key,
    kind text not null,
    first_sent_at timestamptz not null default now(),
    last_sent_at timestamptz not null,
    sent integer not null default 1,
    suppressed integer not null default 0
)
"""
_FAILED_TESTS = ("fail", "error", "runtime error")
_CAUSE_CHARS = 300


@dataclass
class Alert:
    """One message: the fields on-call reads, and a `text` line for chat."""

    kind: str
    command: str
    run_id: str
    status: str
    exit_code: int
    cause: str
    next: str
    source: str | None = None
    model: str | None = None
    subjects: list[str] = field(default_factory=list)
    host: str | None = None
    log_path: str | None = None

    def fingerprint(self) -> str:
        """Identity for deduplication: what happened, not when or in which run."""
        key = [self.kind, self.command, self.source, self.model, self.subjects, self.cause]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()

    def payload(self) -> dict[str, Any]:
        fields = {k: (redact(v) if isinstance(v, str) else v) for k, v in asdict(self).items()}
        fields["subjects"] = [redact(s) for s in self.subjects]
        what = self.source or self.model
        text = (
            f"elt {self.command} {self.kind.replace('_', ' ')}"
            + (f": {what}" if what else "")
            + f": {self.cause} (next: {self.next}) [run {self.run_id[:8]}"
            + (f" on {self.host}" if self.host else "")
            + "]"
        )
        return {"text": redact(text), **fields}


# ---- what a run's failure becomes ----


def alerts_for(run: Any, outcome: dict[str, Any], dbt_nodes: list[dict[str, Any]]) -> list[Alert]:
    """The alerts a finished run sends: none on success, else one per failure kind."""
    if outcome["status"] == "success":
        return []
    base = {
        "command": run.command,
        "run_id": run.run_id,
        "status": outcome["status"],
        "exit_code": outcome["exit_code"],
        "host": run.host,
        "log_path": run.log_path,
    }
    found: list[Alert] = []
    breaches = [f for f in run.failures if f.get("status") == "quarantine"]
    if breaches:
        source, _, feed = breaches[0]["name"].partition(".")
        found.append(
            Alert(
                kind="quarantine_breached",
                cause=f"feed {feed}: {_cut(breaches[0].get('message') or '')}",
                next=f"elt quarantine list --feed {feed}",
                source=source,
                subjects=[f["name"] for f in breaches],
                **base,
            )
        )
    # freshness past error_after (or not computable); a warning is not an alert
    stale = [
        n
        for n in dbt_nodes
        if n["resource_type"] == "source" and n["status"] not in ("pass", "warn")
    ]
    if stale:
        names = [n["name"] for n in stale]
        source = names[0].partition(".")[0]
        found.append(
            Alert(
                kind="source_stale",
                cause=f"freshness {stale[0]['status']} for {', '.join(names[:5])}"
                + (f" (+{len(names) - 5} more)" if len(names) > 5 else ""),
                next=f"elt doctor --source {source}; then elt load {source}",
                source=source,
                subjects=names,
                **base,
            )
        )
    tests = [
        n
        for n in dbt_nodes
        if n["resource_type"] in ("test", "unit_test") and n["status"] in _FAILED_TESTS
    ]
    if tests:
        first = tests[0]
        rows = f", {first['failures']} failing rows" if first.get("failures") else ""
        found.append(
            Alert(
                kind="test_failed",
                cause=f"{len(tests)} test(s) failed; first: {first['name']}"
                f" ({first['status']}{rows})",
                next=f"elt test -s {first['name']}",
                model=first["name"],
                subjects=[n["name"] for n in tests],
                **base,
            )
        )
    if found:
        return found
    kind = {"failed": "run_failed", "stopped": "run_stopped"}.get(outcome["status"], "run_error")
    failed_sources = [n for n, s in run.sources.items() if s.get("status") != "success"]
    source = failed_sources[0] if failed_sources else _named_source(run, outcome.get("error"))
    first_failure = run.failures[0] if run.failures else {}
    cause = outcome.get("error") or first_failure.get("message") or first_failure.get("name")
    hint = getattr(run, "hint", None)
    return [
        Alert(
            kind=kind,
            cause=_cut(cause or outcome["status"]),
            next=hint or (f"elt doctor --source {source}" if source else "elt doctor"),
            source=source,
            model=None if source else first_failure.get("name"),
            subjects=failed_sources or ([source] if source else []),
            **base,
        )
    ]


def _named_source(run: Any, error: str | None) -> str | None:
    """The source an error line names first (`load payments: ...`), when it is one of the
    run's sources: elt's errors name the source or model before the cause."""
    match = re.match(rf"{re.escape(run.command)} ([\w.-]+):", error or "")
    sources = (run.args or {}).get("sources") or []
    return match.group(1) if match and match.group(1) in sources else None


def _cut(text: str) -> str:
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= _CAUSE_CHARS else line[: _CAUSE_CHARS - 3] + "..."


# ---- the run's end ----


def alert_run(warehouse: Any, run: Any, outcome: dict[str, Any]) -> list[dict[str, Any]]:
    """Send the run's alerts to the configured webhooks; the payloads sent."""
    urls = settings.url_list("alerts", "webhook_urls")
    if not urls or outcome["status"] == "success":
        return []
    nodes = _dbt_nodes(warehouse, run.run_id) if run.command in ("transform", "test") else []
    window = settings.number("alerts", "dedupe_window_seconds", 3600)
    sent = []
    deadline = time.monotonic() + settings.number("alerts", "budget_seconds", 5.0)
    for alert in alerts_for(run, outcome, nodes):
        store = _Dedupe(warehouse)
        fingerprint = alert.fingerprint()
        if not store.claim(fingerprint, alert.kind, window):
            runlog.note(f"alert {alert.kind} not sent: sent within the last {window:.0f} s")
            continue
        payload = alert.payload()
        if deliver(urls, payload, deadline):
            sent.append(payload)
            runlog.note(f"alert {alert.kind} sent", alert=payload)
        else:
            store.release(fingerprint)
    return sent


def _dbt_nodes(warehouse: Any, run_id: str) -> list[dict[str, Any]]:
    try:
        conn = warehouse.connect(connect_timeout=5)
    except Exception:
        return []
    try:
        conn.autocommit = True
        engines.bound(conn, 5)
        with conn.cursor() as cur:
            if not engines.relation_exists(cur, SCHEMA, "dbt_results"):
                return []
            cur.execute(
                f"select name, resource_type, status, failures from {SCHEMA}.dbt_results"
                " where run_id = %s order by finished_at",
                (run_id,),
            )
            columns = [d.name for d in cur.description]
            return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    except Exception as exc:
        log.warning(f"alerts: dbt results not read ({type(exc).__name__})")
        return []
    finally:
        conn.close()


# ---- delivery ----


def deliver(urls: list[str], payload: dict[str, Any], deadline: float) -> bool:
    """POST the payload to every webhook at once; True when at least one accepted it."""
    body = json.dumps(payload).encode()
    accepted: list[bool] = [False] * len(urls)
    threads = [
        threading.Thread(target=_post, args=(url, body, deadline, accepted, i), daemon=True)
        for i, url in enumerate(urls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return any(accepted)


def _post(url: str, body: bytes, deadline: float, accepted: list[bool], index: int) -> None:
    attempts = int(settings.number("alerts", "max_attempts", 2))
    timeout = settings.number("alerts", "timeout_seconds", 2.0)
    problem = "no time left"
    for attempt in range(max(1, attempts)):
        left = deadline - time.monotonic()
        if left <= 0.05:
            break
        request = urllib.request.Request(
            url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=min(timeout, left)) as response:
                if 200 <= response.status < 300:
                    accepted[index] = True
                    return
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code != 429:
                break  # the webhook refuses this message: retrying will not change that
        except (OSError, ValueError) as exc:
            problem = type(getattr(exc, "reason", exc)).__name__
        if attempt + 1 < attempts:
            time.sleep(min(0.5 * (attempt + 1), max(0.0, deadline - time.monotonic())))
    # the URL is a secret (a Slack webhook's path is its token): name the webhook by number
    log.warning(f"alerts: webhook {index + 1} did not accept the alert ({problem})")


# ---- deduplication ----


class _Dedupe:
    """Claims an alert for sending: in `elt_audit.alerts`, else in a file beside the logs."""

    def __init__(self, warehouse: Any) -> None:
        self.warehouse = warehouse
        self.in_file = False

    def claim(self, fingerprint: str, kind: str, window: float) -> bool:
        for attempt in range(2):
            try:
                return self._claim_in_warehouse(fingerprint, kind, window)
            except EltError:  # the warehouse cannot be reached
                break
            except Exception:
                # concurrent first runs race on `create table if not exists` (one fails
                # on pg_type's unique index): the second attempt finds the table
                if attempt:
                    break
        self.in_file = True
        return self._claim_in_file(fingerprint, window)

    def _claim_in_warehouse(self, fingerprint: str, kind: str, window: float) -> bool:
        conn = self.warehouse.connect(connect_timeout=3)
        try:
            conn.autocommit = True
            engines.bound(conn, 3)
            with conn.cursor() as cur:
                cur.execute(f"create schema if not exists {SCHEMA}")
                cur.execute(DDL)
                cur.execute(
                    f"insert into {SCHEMA}.alerts as a (fingerprint, kind, last_sent_at)"
                    " values (%s, %s, now()) on conflict (fingerprint) do update"
                    " set last_sent_at = now(), sent = a.sent + 1"
                    " where a.last_sent_at < now() - %s * interval '1 second' returning 1",
                    (fingerprint, kind, window),
                )
                if cur.fetchone() is not None:
                    return True
                cur.execute(
                    f"update {SCHEMA}.alerts set suppressed = suppressed + 1"
                    " where fingerprint = %s",
                    (fingerprint,),
                )
                return False
        finally:
            conn.close()

    def release(self, fingerprint: str) -> None:
        """An alert no webhook accepted is not 'sent': the next identical one may go."""
        with contextlib.suppress(Exception):
            if self.in_file:
                self._claim_in_file(fingerprint, 0, release=True)
                return
            conn = self.warehouse.connect(connect_timeout=3)
            try:
                conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(
                        f"update {SCHEMA}.alerts set last_sent_at = '-infinity'"
                        " where fingerprint = %s",
                        (fingerprint,),
                    )
            finally:
                conn.close()

    def _claim_in_file(self, fingerprint: str, window: float, release: bool = False) -> bool:
        import fcntl

        path = runlog.log_dir() / "alerts_sent.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            try:
                sent = json.loads(handle.read() or "{}")
            except ValueError:
                sent = {}
            now = time.time()
            sent = {k: v for k, v in sent.items() if now - v < 7 * 86400}  # bounded
            if release:
                sent.pop(fingerprint, None)
                claimed = False
            else:
                claimed = now - sent.get(fingerprint, 0) >= window
                if claimed:
                    sent[fingerprint] = now
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(sent))
            return claimed
