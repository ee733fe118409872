"""`elt quarantine list|replay`: rows a loader could not load, and loading them after a fix."""

from __future__ import annotations

import click

from elt import output
from elt.options import format_option
from elt.runtime import Runtime
from loaders import quarantine as q
from runtime.errors import ConfigError

RAW_WIDTH = 80

feed_option = click.option(
    "--feed", envvar="ELT_FEED", help="Only this feed (e.g. ad_spend); all feeds by default."
)


@click.group(
    epilog="\b\nExamples:\n  elt quarantine list"
    "\n  elt quarantine list --feed ad_spend --format json"
    "\n  elt quarantine replay --feed ad_spend",
)
def quarantine() -> None:
    """Rows a load could not parse or type, kept with file, line, reason and raw text."""


@quarantine.command("list")
@feed_option
@click.option(
    "--status",
    type=click.Choice([*q.STATUSES, "all"]),
    default=q.OPEN,
    show_default=True,
    help="open: waiting for a fix; replayed; superseded by a newer delivery of the file.",
)
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@format_option()
def list_rows(feed: str | None, status: str, limit: int, fmt: str) -> None:
    """List quarantined rows in the order they arrived (file, line); counts cover all."""
    counts, rows = _read(Runtime().warehouse, feed, status, limit)
    if fmt == "json":
        output.emit_json(
            {"command": "quarantine list", "status": "success", "counts": counts, "rows": rows}
        )
        return
    total = sum(sum(per.values()) for per in counts.values())
    if not rows:
        output.line(f"no {'' if status == 'all' else status + ' '}quarantined rows")
        return
    output.table(
        "quarantine",
        ["source", "feed", "file", "line", "status", "reason", "raw text"],
        [
            (
                r["source"],
                r["feed"],
                r["file"],
                r["line"],
                r["status"],
                r["reason"],
                _short(r["raw_text"]),
            )
            for r in rows
        ],
    )
    output.line(f"{total:,} row(s) in quarantine ({status}), {len(rows):,} shown")
    if status == q.OPEN:
        output.log(
            "fix the file (deliver it again) or the feed's rules, then `elt quarantine replay`"
        )


def _read(warehouse, feed: str | None, status: str, limit: int) -> tuple[dict, list[dict]]:
    from runtime import engines

    conn = engines.read_only(warehouse)
    try:
        with conn.cursor() as cur:
            if not engines.relation_exists(cur, *q.AUDIT_TABLE.split(".")):
                return {}, []
            where, params = ["true"], []
            if feed:
                where.append("feed = %s")
                params.append(feed)
            if status != "all":
                where.append("status = %s")
                params.append(status)
            condition = " and ".join(where)
            cur.execute(
                f"select feed, status, count(*) from {q.AUDIT_TABLE} where {condition}"
                " group by feed, status order by feed, status",
                params,
            )
            counts: dict[str, dict[str, int]] = {}
            for name, state, count in cur.fetchall():
                counts.setdefault(name, {})[state] = count
            cur.execute(
                "select quarantine_id, source, feed, file, file_modified_at, line, reason,"
                " raw_text, load_id, quarantined_at, status, resolved_at"
                f" from {q.AUDIT_TABLE} where {condition}"
                " order by quarantined_at, file, line limit %s",
                [*params, limit],
            )
            columns = [d.name for d in cur.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()
    return counts, rows


def _short(text: str | None) -> str:
    if text is None:
        return ""
    text = text.replace("\n", "\\n")
    return text if len(text) <= RAW_WIDTH else text[: RAW_WIDTH - 3] + "..."


@quarantine.command()
@feed_option
@format_option()
def replay(feed: str | None, fmt: str) -> None:
    """Parse open quarantined rows again with the current rules; load those that pass.

    Rows that still fail stay open with the current reason. Replayed rows merge into
    their feed table on its key, keeping their original file and line.
    """
    from elt.commands.load import StageLog, describe_failure
    from loaders import SOURCES, pipeline

    runtime = Runtime()
    runtime.prepare_dlt()
    results = []
    for name in SOURCES:
        hook = pipeline.source_hook(name, "replay")
        if hook is None:
            continue
        stage = StageLog(name, quiet=fmt != "human")
        try:
            report = pipeline.run(
                name,
                destination_url=runtime.warehouse.url,
                pipelines_dir=runtime.pipelines_dir,
                on_stage=stage,
                build=lambda p, hook=hook: hook(p, feed=feed),
            )
        except ValueError as exc:  # an unknown feed: a usage error, named
            raise ConfigError(f"quarantine replay: {exc}", hint="elt quarantine list") from None
        except Exception as exc:
            raise describe_failure(name, f"replay {stage.current}", exc) from exc
        results.append(report)
    _render_replay(results, fmt)


def _render_replay(reports: list, fmt: str) -> None:
    if fmt == "json":
        output.emit_json(
            {
                "command": "quarantine replay",
                "status": "success",
                "sources": [
                    {"source": r.source, "replayed": r.replayed, "rows": r.rows} for r in reports
                ],
            }
        )
        return
    rows = [
        (report.source, feed, f"{counts['loaded']:,}", f"{counts['quarantined']:,}")
        for report in reports
        for feed, counts in sorted(report.replayed.items())
    ]
    if not rows:
        output.line("nothing to replay: no open quarantined rows")
        return
    output.table("replay", ["source", "feed", "loaded", "still quarantined"], rows)
