"""The OCP time limits derived from journal facts: due, overdue, met, late; windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.core.deadlines import Deadline, deadlines, overdue

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _status(found: tuple[Deadline, ...]) -> dict[str, str]:
    return {d.name: d.status for d in found}


def test_nothing_runs_before_delivery() -> None:
    """A request not yet handed to the other side has no deadline."""
    assert deadlines("RCQ", None, [], T0) == ()


def test_retroactive_check_reply_due_then_overdue() -> None:
    """Reply 90 days, whole check 180 days from delivery (Rule 18)."""
    day89 = deadlines("RCQ", T0, [], T0 + timedelta(days=89))
    day91 = deadlines("RCQ", T0, [], T0 + timedelta(days=91))
    assert _status(day89) == {"reply": "due", "whole check": "due"}
    assert _status(day91) == {"reply": "overdue", "whole check": "due"}
    assert overdue(day91) and not overdue(day89)
    assert day91[0].due_at == T0 + timedelta(days=90)
    assert day91[1].due_at == T0 + timedelta(days=180)


def test_a_late_reply_is_late_and_the_check_still_runs() -> None:
    """A reply linked on day 100 is late; the whole check runs on until the determination."""
    found = deadlines(
        "RCQ", T0, [("retroactive-check-reply", T0 + timedelta(days=100))], T0 + timedelta(days=120)
    )
    assert _status(found) == {"reply": "late", "whole check": "due"}


def test_the_whole_check_is_met_by_the_determination_not_the_reply() -> None:
    """Rule 18: the check ends with the importing side's determination, not the reply."""
    reply = ("retroactive-check-reply", T0 + timedelta(days=30))
    replied = deadlines("RCQ", T0, [reply], T0 + timedelta(days=181))
    assert _status(replied) == {"reply": "met", "whole check": "overdue"}
    decided = ("origin-determination", T0 + timedelta(days=60))
    assert _status(deadlines("RCQ", T0, [reply, decided], T0 + timedelta(days=181))) == {
        "reply": "met",
        "whole check": "met",
    }
    late = ("origin-determination", T0 + timedelta(days=190))
    assert (
        _status(deadlines("RCQ", T0, [reply, late], T0 + timedelta(days=200)))["whole check"]
        == "late"
    )


def test_the_whole_visit_is_met_by_the_determination_not_the_result() -> None:
    """Rule 19: the visit process ends with the determination; the result meets the visit."""
    links = [
        ("verification-visit-consent", T0 + timedelta(days=10)),
        ("verification-visit-result", T0 + timedelta(days=40)),
    ]
    found = deadlines("VVQ", T0, links, T0 + timedelta(days=181))
    assert _status(found) == {"consent": "met", "visit": "met", "whole visit": "overdue"}
    links.append(("origin-determination", T0 + timedelta(days=50)))
    assert _status(deadlines("VVQ", T0, links, T0 + timedelta(days=181)))["whole visit"] == "met"


def test_visit_runs_from_the_consent() -> None:
    """Consent 30 days from the request; the visit's 60 days start at the consent (Rule 19)."""
    consent = T0 + timedelta(days=20)
    before = deadlines("VVQ", T0, [], T0 + timedelta(days=31))
    after = deadlines("VVQ", T0, [("verification-visit-consent", consent)], T0 + timedelta(days=79))
    assert _status(before) == {"consent": "overdue", "whole visit": "due"}
    assert _status(after) == {"consent": "met", "visit": "due", "whole visit": "due"}
    visit = next(d for d in after if d.name == "visit")
    assert visit.starts_at == consent
    assert visit.due_at == consent + timedelta(days=60)


def test_rejection_window_opens_closes_and_is_used() -> None:
    """The e-Form D's 60-day rejection window (Rule 13(3)) is a window, not an obligation."""
    assert _status(deadlines("EFD", T0, [], T0 + timedelta(days=59))) == {
        "rejection window": "open"
    }
    closed = deadlines("EFD", T0, [], T0 + timedelta(days=61))
    assert _status(closed) == {"rejection window": "closed"}
    assert not overdue(closed)
    used = deadlines("EFD", T0, [("rejection", T0 + timedelta(days=5))], T0)
    assert _status(used) == {"rejection window": "used"}
    late = deadlines("EFD", T0, [("rejection", T0 + timedelta(days=70))], T0 + timedelta(days=70))
    assert _status(late) == {"rejection window": "late"}


def test_an_origin_declaration_has_the_same_rejection_window() -> None:
    """An Origin Declaration's rejection window is 60 days from delivery, like the e-Form D's."""
    assert _status(deadlines("OD", T0, [], T0 + timedelta(days=60))) == {"rejection window": "open"}
    assert _status(deadlines("OD", T0, [], T0 + timedelta(days=61))) == {
        "rejection window": "closed"
    }
    used = deadlines("OD", T0, [("rejection", T0 + timedelta(days=3))], T0 + timedelta(days=90))
    assert _status(used) == {"rejection window": "used"}


def test_other_types_have_no_limits() -> None:
    """An ACDD or a receipt carries no OCP time limit here."""
    assert deadlines("ACDD", T0, [], T0) == ()
