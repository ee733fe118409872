"""System checks: CPU, memory, load and free disk where the warehouse and dlt keep data."""

from __future__ import annotations

import os
from pathlib import Path

from diagnostics.context import Context
from diagnostics.results import Outcome, fail, ok, warn


def cpu(ctx: Context) -> Outcome:
    import psutil

    busy = psutil.cpu_percent(interval=0.2)
    count = psutil.cpu_count() or 1
    detail = f"{count} CPU(s), {busy:.0f}% busy"
    if busy >= ctx.config.doctor("cpu_busy_warn_percent"):
        return warn(detail, "see what is busy: `top -o %CPU`", cpus=count, percent=busy)
    return ok(detail, cpus=count, percent=busy)


def memory(ctx: Context) -> Outcome:
    import psutil

    mem = psutil.virtual_memory()
    available = mem.available * 100 / mem.total
    detail = f"{_gib(mem.available)} of {_gib(mem.total)} available ({available:.0f}%)"
    facts = {"available_bytes": mem.available, "total_bytes": mem.total}
    if available < ctx.config.doctor("memory_available_warn_percent"):
        return warn(detail, "see what holds memory: `top -o %MEM`", **facts)
    return ok(detail, **facts)


def load(ctx: Context) -> Outcome:
    import psutil

    one, five, _ = os.getloadavg()
    per_cpu = five / (psutil.cpu_count() or 1)
    detail = f"load {one:.2f} (1 min), {five:.2f} (5 min): {per_cpu:.2f} per CPU"
    if per_cpu > ctx.config.doctor("load_per_cpu_warn"):
        return warn(detail, "see what is running: `top`", per_cpu=round(per_cpu, 2))
    return ok(detail, per_cpu=round(per_cpu, 2))


def disk(ctx: Context, role: str, path: Path) -> Outcome:
    """Free space on the filesystem holding `path` (its nearest existing parent)."""
    import psutil

    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    usage = psutil.disk_usage(str(existing))
    free = usage.free * 100 / usage.total
    detail = f"{role} {path}: {_gib(usage.free)} free of {_gib(usage.total)} ({free:.1f}%)"
    facts = {"path": str(path), "free_bytes": usage.free, "free_percent": round(free, 2)}
    hint = f"free space: `du -sh {existing}/* | sort -h | tail`"
    if free < ctx.config.doctor("disk_free_fail_percent"):
        return fail(detail, hint, **facts)
    if free < ctx.config.doctor("disk_free_warn_percent"):
        return warn(detail, hint, **facts)
    return ok(detail, **facts)


def _gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB"
