"""AEO status under the ASEAN AEO MRA end to end (issue 18 §5): notifications travel only
between MRA partners and are kept per issuing country; an ACDD's AEO ids are read against the
issuer's register on the declaration date and give warnings, never a refusal."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import aiohttp
import pytest

from asw_toolkit.simulator import RunningSimulator
from gateway.app import Gateway
from tests.conftest import SAMPLES
from tests.integration.helpers import base_url, submit
from tests.integration.test_self_certification import _state, gateway, nsw_my

__all__ = ["gateway", "nsw_my"]  # the fixtures this module uses

pytestmark = pytest.mark.rabbitmq

SNAPSHOT = SAMPLES / "aeo-status" / "valid" / "sg-my-snapshot.xml"
DELTA = SAMPLES / "aeo-status" / "valid" / "sg-my-delta-suspension.xml"
TO_VN = SAMPLES / "aeo-status" / "invalid" / "aeo-receiver-not-mra-partner.xml"
ACDD = Path(__file__).resolve().parents[1] / "data" / "acdd-sg-my-aeo.xml"
SG_AEO = "AEOSG2024STP00001"


def _fresh(path: Path, *edits: tuple[str, str]) -> tuple[str, bytes]:
    message_id = str(uuid.uuid4())
    text = re.sub(
        r"<cm:MessageID>[^<]+</cm:MessageID>",
        f"<cm:MessageID>{message_id}</cm:MessageID>",
        path.read_text(encoding="utf-8"),
    )
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return message_id, text.encode()


def _acdd(day: str, number: str) -> tuple[str, bytes]:
    """The SG -> MY ACDD with AEO ids, issued on ``day`` under permit ``number``."""
    return _fresh(ACDD, ("2026-10-14T11:32:00", f"{day}T11:32:00"), ("EX2026101400871234", number))


def _warnings(body: dict[str, list[dict[str, str]]]) -> list[tuple[str, str]]:
    return sorted((w["code"], w["message"]) for w in body["warnings"])


async def test_aeo_ids_are_read_against_the_register_on_the_declaration_date(
    gateway: Gateway, nsw_my: RunningSimulator
) -> None:
    """A snapshot, then a delta suspending one AEO: ACDDs before and after get what applied."""
    async with aiohttp.ClientSession() as session:
        _, to_vn = _fresh(TO_VN)
        status, body, _ = await submit(session, gateway, to_vn)
        assert status == 422
        assert [f["code"] for f in body["findings"]] == ["aeo-receiver-not-mra-partner"]

        snapshot_id, snapshot = _fresh(SNAPSHOT)
        status, body, _ = await submit(session, gateway, snapshot)
        assert status == 202, body
        await _state(session, gateway, snapshot_id, "RECEIPTED")
        assert snapshot_id in nsw_my.simulator.received

        status, body, _ = await submit(session, gateway, _acdd("2026-09-15", "EX-A")[1])
        assert status == 202, body
        # MY has sent no notification: its AEO is unknown here, a warning only.
        assert [code for code, _ in _warnings(body)] == ["aeo-not-found"]

        delta_id, delta = _fresh(DELTA)
        status, body, _ = await submit(session, gateway, delta)
        assert status == 202, body

        acdd_id, acdd = _acdd("2026-10-14", "EX-B")
        status, body, _ = await submit(session, gateway, acdd)
        assert status == 202, body
        async with session.get(f"{base_url(gateway)}/v1/messages/{acdd_id}") as response:
            view = await response.json()
        assert [r["message_id"] for r in view["related"] if r["relation"] == "register-entry"] == [
            delta_id
        ]
        warnings = _warnings(body)
        assert [code for code, _ in warnings] == ["aeo-not-found", "aeo-not-valid"]
        # The dry run reports the same register warnings (valid: warnings only).
        status, checked, _ = await submit(session, gateway, acdd, "/v1/validate")
        assert status == 200 and checked["valid"] is True
        assert sorted((f["code"], f["message"]) for f in checked["findings"]) == warnings
        assert "suspended (Security review after a seal incident.)" in warnings[1][1]

        # Before the delta's date the same AEO was valid.
        status, body, _ = await submit(session, gateway, _acdd("2026-09-20", "EX-C")[1])
        assert status == 202, body
        assert [code for code, _ in _warnings(body)] == ["aeo-not-found"]

        url = f"{base_url(gateway)}/v1/registers/aeo/SG/{SG_AEO}"
        async with session.get(url, params={"on": "2026-10-14"}) as response:
            record = await response.json()
        assert record["record"]["status"] == "SUSPENDED" and record["valid"] is False
        assert [e["action"] for e in record["history"]] == ["SNAPSHOT", "SNAPSHOT", "DELTA"]
        async with session.get(url, params={"on": "2026-09-02"}) as response:
            assert (await response.json())["valid"] is True
        register_url = f"{base_url(gateway)}/v1/registers/aeo/SG"
        async with session.get(register_url, params={"on": "2026-10-14"}) as response:
            register = await response.json()
        listed = {op["aeo_id"]: op for op in register["operators"]}
        assert listed[SG_AEO]["status"] == "SUSPENDED" and listed[SG_AEO]["valid"] is False
        async with session.get(register_url, params={"on": "2026-09-02"}) as response:
            before = {op["aeo_id"]: op["valid"] for op in (await response.json())["operators"]}
        assert before[SG_AEO] is True
        async with session.get(register_url, params={"on": "2020-01-01"}) as response:
            assert (await response.json())["operators"] == []
