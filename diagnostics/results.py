"""What a check returns: plain data, rendered by `elt doctor` and serialised to JSON as is."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SECTIONS = ("system", "config", "connectivity", "data")


class Status(StrEnum):
    """OK, WARN (look at it), FAIL (broken); SKIP when a check could not run because of a
    failure reported by another check (its detail names that check)."""

    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


SEVERITY = {Status.OK: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2}


@dataclass
class Result:
    """One line of the report. `detail` and `hint` hold no secret and no row value;
    `hint` names the exact next command whenever the status is not OK."""

    id: str
    section: str
    name: str
    status: Status
    detail: str
    hint: str | None = None
    source: str | None = None
    seconds: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = field(default=None, repr=False)  # for --debug, never in JSON

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "section": self.section,
            "name": self.name,
            "source": self.source,
            "status": str(self.status),
            "detail": self.detail,
            "hint": self.hint,
            "seconds": round(self.seconds, 3),
            "facts": self.facts,
        }


@dataclass
class Outcome:
    """What a check function returns; the runner adds the identity and the timing."""

    status: Status
    detail: str
    hint: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)


def ok(detail: str, **facts: Any) -> Outcome:
    return Outcome(Status.OK, detail, None, facts)


def warn(detail: str, hint: str, **facts: Any) -> Outcome:
    return Outcome(Status.WARN, detail, hint, facts)


def fail(detail: str, hint: str, **facts: Any) -> Outcome:
    return Outcome(Status.FAIL, detail, hint, facts)


class Skipped(Exception):
    """Raised inside a check that cannot run because something it needs already failed."""

    def __init__(self, detail: str, hint: str) -> None:
        super().__init__(detail)
        self.detail, self.hint = detail, hint


def worst(results: list[Result]) -> Status:
    statuses = [r.status for r in results if r.status is not Status.SKIP]
    return max(statuses, key=SEVERITY.__getitem__, default=Status.OK)
