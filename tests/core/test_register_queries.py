"""Register lookups as pure functions: what a query asks, what the register answers on the day
asked, whether the gateway answers itself, and that its answers pass their own schema and
rules."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.core.aeo import read_notification
from gateway.core.envelope import DocumentType, read_envelope
from gateway.core.parsing import parse
from gateway.core.register_queries import (
    AeoQuery,
    AnswerHere,
    CeLookup,
    Forward,
    Match,
    answer_message_id,
    build_response,
    ce_lookup_matches,
    decide_query,
    read_query,
)
from gateway.core.registers import read_update
from gateway.core.validation import Validator

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
CE_REQUEST = SAMPLES / "ce-lookup" / "valid" / "my-sg-orchid-foods-request.xml"
AEO_QUERY = SAMPLES / "aeo-query" / "valid" / "my-sg-merlion-query.xml"
GRANT = read_update(
    parse((SAMPLES / "ce-register" / "valid" / "sg-1-grant-orchid-foods.xml").read_bytes()),
    message_id="m-grant",
)
SUSPEND = read_update(
    parse((ROOT / "tests" / "data" / "ce-register" / "sg-3-suspend-orchid-foods.xml").read_bytes()),
    message_id="m-suspend",
)
AEO_HISTORY = [
    *read_notification(
        parse((SAMPLES / "aeo-status" / "valid" / "sg-my-snapshot.xml").read_bytes()),
        message_id="m-snapshot",
    ),
    *read_notification(
        parse((SAMPLES / "aeo-status" / "valid" / "sg-my-delta-suspension.xml").read_bytes()),
        message_id="m-delta",
    ),
]
NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _lookup() -> CeLookup:
    query = read_query(parse(CE_REQUEST.read_bytes()))
    assert isinstance(query, CeLookup)
    return query


@pytest.fixture(scope="module")
def validator() -> Validator:
    """The shipped schemas and rules."""
    return Validator.load(ROOT / "xsd")


def test_a_query_is_read_from_its_document() -> None:
    """The request names the authorisation, the day, the HS codes and the signatory."""
    assert _lookup() == CeLookup(
        query_id="MY-CEQ-2026-000311",
        country="SG",
        authorisation_id="SGCE000123",
        day=date(2026, 11, 19),
        codes=("18069010", "19053110"),
        signatory="Tan Mei Ling",
    )
    aeo = read_query(parse(AEO_QUERY.read_bytes()))
    assert aeo == AeoQuery(
        query_id="MY-AEQ-2026-001207", country="SG", aeo_id="AEOSG2024STP00001",
        day=date(2026, 10, 14),
    )  # fmt: skip
    assert (_lookup().register, aeo.register) == ("certified-exporter", "aeo")


def test_the_gateway_answers_only_what_it_holds_and_may_sign() -> None:
    """Answer here needs the setting, the register and the asked country's gateway key."""
    query = _lookup()
    assert decide_query(query, register_held=True, can_sign=True, answer_here=True) == (
        AnswerHere(country="SG", register="certified-exporter")
    )
    for held, sign, here, why in (
        (True, True, False, "configured to forward"),
        (False, True, True, "no certified-exporter register of SG"),
        (True, False, True, "no gateway key of SG"),
    ):
        decision = decide_query(query, register_held=held, can_sign=sign, answer_here=here)
        assert isinstance(decision, Forward) and why in decision.reason


def test_matches_read_the_register_on_the_day_asked() -> None:
    """Active on the 19th; suspended from the 25th: the authorisation no longer matches, the
    products and signatories still do (a 6-digit authorisation covers its AHTN lines; names
    compared without case)."""
    query = replace(_lookup(), signatory="TAN  mei ling", codes=("18069010", "20098999"))
    standing, matches = ce_lookup_matches(query, [GRANT, SUSPEND])
    assert standing is not None and standing.status == "active"
    assert [(m.element, m.value, m.matched) for m in matches] == [
        ("EXPORTER", None, True),
        ("AUTHORISATION", None, True),
        ("PRODUCT", "18069010", True),
        ("PRODUCT", "20098999", False),
        ("SIGNATORY", "TAN  mei ling", True),
    ]
    _, later = ce_lookup_matches(replace(query, day=date(2026, 11, 26)), [GRANT, SUSPEND])
    assert later[1] == Match(
        element="AUTHORISATION",
        value=None,
        matched=False,
        reason="SGCE000123 was suspended since 2026-11-25, so not valid on 2026-11-26.",
    )
    _, before = ce_lookup_matches(replace(query, day=date(2026, 2, 1)), [GRANT])
    assert [m.matched for m in before] == [False] * 5


@pytest.mark.parametrize("day", ["2026-11-19", "2026-11-26", "2026-02-01"])
def test_the_ce_lookup_answer_passes_its_own_schema_and_rules(
    validator: Validator, day: str
) -> None:
    """The gateway's answer is a valid CEP from SG to MY naming the request."""
    request = parse(CE_REQUEST.read_bytes().replace(b"2026-11-19", day.encode()))
    envelope = read_envelope(request)
    mid = answer_message_id(envelope.message_id)
    answer = build_response(
        envelope, read_query(request), [GRANT, SUSPEND], message_id=mid, created=NOW
    )
    report = validator.check(answer, now=NOW)
    assert report.valid and not report.findings, report.findings
    answered = read_envelope(answer)
    assert (answered.document_type, answered.sender.country, answered.receiver.country) == (
        DocumentType.CE_LOOKUP_RESPONSE, "SG", "MY",
    )  # fmt: skip
    assert answered.referenced_message_id == envelope.message_id
    assert answer_message_id(envelope.message_id.upper()) == mid  # stable across retries


@pytest.mark.parametrize(
    ("day", "found", "valid", "status"),
    [
        ("2026-10-14", "true", "false", "SUSPENDED"),
        ("2026-09-15", "true", "true", "VALID"),
        ("2025-06-01", "false", "false", None),
    ],
)
def test_the_aeo_answer_says_status_validity_and_suspension(
    validator: Validator, day: str, found: str, valid: str, status: str | None
) -> None:
    """Suspended after the delta, valid before, unknown before the snapshot; each answer valid."""
    request = parse(AEO_QUERY.read_bytes().replace(b"2026-10-14</aq:", f"{day}</aq:".encode()))
    envelope = read_envelope(request)
    answer = build_response(
        envelope,
        read_query(request),
        AEO_HISTORY,
        message_id=answer_message_id(envelope.message_id),
        created=NOW,
    )
    report = validator.check(answer, now=NOW)
    assert report.valid and not report.findings, report.findings
    result = {el.tag.split("}")[1]: el.text for el in answer[1]}
    assert (result["FoundIndicator"], result["ValidIndicator"]) == (found, valid)
    assert result.get("StatusCode") == status
