"""`elt roles apply`: create elt's least-privilege roles and their grants (runtime/roles.py)."""

from __future__ import annotations

import click

from elt import output
from elt.options import format_option


@click.group(
    epilog="\b\nExamples:\n  elt roles apply --dry-run\n  elt roles apply",
)
def roles() -> None:
    """The warehouse roles each command connects as (loader, transformer, analyst, doctor)."""


@roles.command(
    epilog="\b\nExamples:\n  elt roles apply --dry-run    print the SQL\n  elt roles apply",
)
@click.option("--dry-run", is_flag=True, help="Print the SQL (passwords masked), change nothing.")
@format_option()
def apply(dry_run: bool, fmt: str) -> None:
    """Create or update the roles and grants; safe to rerun. On the embedded warehouse the
    roles log in with generated passwords in .elt/credentials.json; on your own server they
    are NOLOGIN: grant them to your login users (README, Security)."""
    from elt.runtime import Runtime
    from runtime import embedded
    from runtime import roles as role_sql

    runtime = Runtime()
    admin = runtime.admin_warehouse
    passwords = (
        embedded.credentials(runtime.project, tuple(role_sql.ROLES.values()))
        if admin.embedded
        else None
    )
    if dry_run:
        sql = role_sql.statements(admin.database, passwords)
    else:
        sql = role_sql.apply(admin, passwords=passwords)
    shown = role_sql.redacted(sql)
    if fmt == "json":
        output.emit_json(
            {
                "command": "roles apply",
                "status": "success",
                "dry_run": dry_run,
                "database": admin.database,
                "roles": list(role_sql.ROLES.values()),
                "statements": shown,
            }
        )
        return
    if dry_run:
        for statement in shown:
            output.line(statement + ";")
        return
    output.line(
        f"roles applied on {admin.database}: {', '.join(role_sql.ROLES.values())}"
        f" ({len(sql)} statements)"
    )
