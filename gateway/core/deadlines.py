"""The OCP's time limits on a conversation, read from what the journal holds.

Nothing is stored for a deadline: it is derived, whenever a message is shown, from journalled
facts, so it cannot drift from them. A limit starts when the message was handed to the other
side (its DELIVERED row: "receipt" in the OCP's sense) or, for the visit itself, when the
consent was linked; it is met by the first link of the expected relation. The clock is passed
in (``now``), never read.

    e-Form D, Origin Decl.    rejection window   60 days   Rule 13(3)  (a window: open/closed)
    retroactive check request reply              90 days   Rule 18
                              whole check       180 days   Rule 18     (met by the determination)
    verification visit req.   consent            30 days   Rule 19
                              visit              60 days   Rule 19     (from the consent)
                              whole visit       180 days   Rule 19     (met by the determination)

Statuses: an obligation is ``due`` (open, in time), ``overdue`` (open, past due), ``met`` or
``late`` (met after it was due); a window is ``open``, ``closed``, ``used`` or ``late``.

``selection`` says which messages can have a limit in a given status, so that the operators'
list (``GET /v1/deadlines``) reads only those from the journal, however old, and derives the
limits of each as here: the journal narrows, this module decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from gateway.core.conversations import (
    REJECTION_DAYS,
    RETRO_REPLY_DAYS,
    RETRO_WHOLE_DAYS,
    STEPS,
    VISIT_CONSENT_DAYS,
    VISIT_DAYS,
    VISIT_WHOLE_DAYS,
)
from gateway.core.envelope import DocumentType as Doc

Kind = Literal["obligation", "window"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """One time limit: its name, rule, length, the link that meets it, what starts it."""

    name: str
    rule: str
    days: int
    relation: str
    kind: Kind = "obligation"
    starts_with: str | None = None
    """A relation whose link starts the limit (None: the message's delivery)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Deadline:
    """One limit as it stands for one message at ``now``."""

    name: str
    rule: str
    kind: Kind
    relation: str
    starts_at: datetime
    due_at: datetime
    done_at: datetime | None
    status: str


_REPLY = STEPS[Doc.RETRO_CHECK_REPLY].relation
_CONSENT = STEPS[Doc.VISIT_CONSENT].relation
_RESULT = STEPS[Doc.VISIT_RESULT].relation
_DETERMINATION = STEPS[Doc.ORIGIN_DETERMINATION].relation

_REJECTION_WINDOW: Final = Limit(
    name="rejection window",
    rule="OCP Rule 13(3)",
    days=REJECTION_DAYS,
    relation=STEPS[Doc.REJECTION_NOTICE].relation,
    kind="window",
)

LIMITS: Final[dict[str, tuple[Limit, ...]]] = {
    Doc.FORM_D.value: (_REJECTION_WINDOW,),
    Doc.ORIGIN_DECLARATION.value: (_REJECTION_WINDOW,),
    Doc.RETRO_CHECK_REQUEST.value: (
        Limit(name="reply", rule="OCP Rule 18", days=RETRO_REPLY_DAYS, relation=_REPLY),
        Limit(
            name="whole check", rule="OCP Rule 18", days=RETRO_WHOLE_DAYS, relation=_DETERMINATION
        ),
    ),
    Doc.VISIT_REQUEST.value: (
        Limit(name="consent", rule="OCP Rule 19", days=VISIT_CONSENT_DAYS, relation=_CONSENT),
        Limit(
            name="visit",
            rule="OCP Rule 19",
            days=VISIT_DAYS,
            relation=_RESULT,
            starts_with=_CONSENT,
        ),
        Limit(
            name="whole visit", rule="OCP Rule 19", days=VISIT_WHOLE_DAYS, relation=_DETERMINATION
        ),
    ),
}


def deadlines(
    document_type: str,
    delivered_at: datetime | None,
    links: Iterable[tuple[str, datetime]],
    now: datetime,
) -> tuple[Deadline, ...]:
    """The limits on a message of ``document_type`` delivered at ``delivered_at`` (None: not
    yet, so nothing runs), given its outgoing links as (relation, at), as of ``now``."""
    if delivered_at is None:
        return ()
    first: dict[str, datetime] = {}
    for relation, at in sorted(links, key=lambda link: link[1]):
        first.setdefault(relation, at)
    found: list[Deadline] = []
    for limit in LIMITS.get(document_type, ()):
        start = delivered_at if limit.starts_with is None else first.get(limit.starts_with)
        if start is None:
            continue
        due = start + timedelta(days=limit.days)
        done = first.get(limit.relation)
        found.append(
            Deadline(
                name=limit.name,
                rule=limit.rule,
                kind=limit.kind,
                relation=limit.relation,
                starts_at=start,
                due_at=due,
                done_at=done,
                status=_status(limit.kind, due, done, now),
            )
        )
    return tuple(found)


def _status(kind: Kind, due: datetime, done: datetime | None, now: datetime) -> str:
    if done is not None:
        if done > due:
            return "late"
        return "met" if kind == "obligation" else "used"
    if now > due:
        return "overdue" if kind == "obligation" else "closed"
    return "due" if kind == "obligation" else "open"


def overdue(found: Sequence[Deadline]) -> bool:
    """Whether any obligation among ``found`` is past due and unmet."""
    return any(d.status == "overdue" for d in found)


STATUSES: Final = {
    "obligation": frozenset({"due", "overdue", "met", "late"}),
    "window": frozenset({"open", "closed", "used", "late"}),
}
"""The statuses a limit of each kind can be in."""
_UNMET: Final = frozenset({"due", "overdue", "open", "closed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which journalled messages can carry a limit in one status: a superset, never less.

    ``relations``: the document types, each with the relations that start or meet its limits
    (the links to read). ``open_only``: only messages lacking a link of one of them (an unmet
    limit). ``min_days``: the fewest days after receipt at which a limit can be in the status
    (overdue, closed), or None.
    """

    relations: dict[str, tuple[str, ...]]
    open_only: bool
    min_days: int | None


def selection(status: str | None) -> Selection:
    """The ``Selection`` for limits in ``status`` (None: every limit of every message)."""
    chosen = {
        doc_type: limits
        for doc_type, limits in LIMITS.items()
        if status is None or any(status in STATUSES[limit.kind] for limit in limits)
    }
    relations = {
        doc_type: tuple(
            sorted(
                {limit.relation for limit in limits}
                | {limit.starts_with for limit in limits if limit.starts_with}
            )
        )
        for doc_type, limits in chosen.items()
    }
    late = status in ("overdue", "closed")
    days = [
        limit.days
        for limits in chosen.values()
        for limit in limits
        if status is not None and status in STATUSES[limit.kind]
    ]
    return Selection(
        relations=relations,
        open_only=status in _UNMET,
        min_days=min(days) if late and days else None,
    )
