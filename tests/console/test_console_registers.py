"""The console's Registers and Deadlines views (issue 18) in a real headless Chromium against a
real gateway and RabbitMQ: register updates and AEO notifications go through the API, then the
operator reads the registers on a day, an entry's history, and the time limits due."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import ROOT, SAMPLES
from tests.console.harness import MISSING_PLAYWRIGHT, Console
from tests.console.test_console_browser import delivered, send, wait_for_state
from tests.integration.helpers import submit

try:
    from playwright.async_api import expect
except ImportError as exc:  # a clear failure, never a skip
    raise ImportError(MISSING_PLAYWRIGHT) from exc

pytestmark = pytest.mark.rabbitmq

GRANT = SAMPLES / "ce-register" / "valid" / "sg-1-grant-orchid-foods.xml"
AMEND = ROOT / "tests" / "data" / "ce-register" / "sg-2-amend-orchid-foods.xml"
SNAPSHOT = SAMPLES / "aeo-status" / "valid" / "sg-my-snapshot.xml"
DELTA = SAMPLES / "aeo-status" / "valid" / "sg-my-delta-suspension.xml"
RETRO_REQUEST = SAMPLES / "verification" / "valid" / "th-sg-retroactive-check-request.xml"
SG_AEO = "AEOSG2024STP00001"


def _fresh(path: Path, *edits: tuple[str, str]) -> tuple[str, bytes]:
    """The sample under a new message id, with literal ``(old, new)`` edits (first match each)."""
    message_id = str(uuid.uuid4())
    text = _new_id(path.read_text(encoding="utf-8"), message_id)
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    return message_id, text.encode()


def _new_id(text: str, message_id: str) -> str:
    return re.sub(r"<cm:MessageID>[^<]+<", f"<cm:MessageID>{message_id}<", text)


async def _accepted(gateway: Gateway, *documents: bytes) -> None:
    async with aiohttp.ClientSession() as session:
        for document in documents:
            status, body, _ = await submit(session, gateway, document)
            assert status == 202, body


async def test_registers_show_exporters_and_aeos_on_a_day_and_an_entry_history(
    running_gateway: Gateway, console: Console
) -> None:
    """SG's GRANT then AMEND (a signatory dropped from 22 November) and an AEO snapshot then a
    suspension: the Registers view shows both registers as they stood on the chosen day, and an
    exporter's page shows who granted what, when, and what the amendment changed."""
    grant_id, grant = _fresh(GRANT)
    amend_id, amend = _fresh(AMEND, ("2026-09-01", "2026-11-22"))
    _, snapshot = _fresh(SNAPSHOT)
    _, delta = _fresh(DELTA)
    await _accepted(running_gateway, grant, amend, snapshot, delta)

    await console.open("#/registers?country=SG&on=2026-11-21")
    page = console.page
    await expect(page.get_by_role("heading", level=1)).to_have_text("Registers")
    exporter = page.locator("tr[data-authorisation='SGCE000123']")
    await expect(exporter).to_have_attribute("data-status", "active")
    await expect(exporter).to_contain_text("Rajesh Kumar")  # before the amendment
    aeo = page.locator(f"tr[data-aeo='{SG_AEO}']")
    await expect(aeo).to_have_attribute("data-status", "SUSPENDED")
    await expect(aeo.locator("td").last).to_have_text("no")
    assert await console.unnamed_controls() == []
    await console.shot("registers")

    await page.get_by_label("As it stood on").fill("2026-11-23")
    await page.get_by_role("button", name="Show registers").click()
    await expect(exporter).not_to_contain_text("Rajesh Kumar")
    assert "on=2026-11-23" in page.url
    await page.get_by_label("As it stood on").fill("2020-01-01")
    await page.get_by_role("button", name="Show registers").click()
    await expect(page.get_by_text("SG has notified no certified exporter in force")).to_be_visible()
    await expect(page.get_by_text("SG has notified no AEO in force")).to_be_visible()

    await console.go("#/registers?country=SG&on=2026-11-23")
    await page.get_by_role("link", name="SGCE000123").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Certified exporter SGCE000123")
    history = page.get_by_role("table", name="History")
    rows = history.locator("tbody tr")
    assert await rows.evaluate_all("(r) => r.map((x) => x.dataset.action)") == ["GRANT", "AMEND"]
    await expect(rows.nth(0)).to_contain_text("first entry")
    await expect(rows.nth(0).get_by_role("link", name=grant_id)).to_be_visible()
    change = rows.nth(1).locator("li[data-field='signatories']")
    await expect(change.locator("del")).to_have_text("Tan Mei Ling, Rajesh Kumar")
    await expect(change.locator("ins")).to_have_text("Tan Mei Ling")
    await expect(rows.nth(1).get_by_role("link", name=amend_id)).to_be_visible()
    await console.shot("register-entry")

    await console.go(f"#/registers/aeo/SG/{SG_AEO}?on=2026-11-23")
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"AEO {SG_AEO}")
    actions = page.get_by_role("table", name="History").locator("tbody tr")
    assert await actions.evaluate_all("(r) => r.map((x) => x.dataset.action)") == [
        "SNAPSHOT",
        "SNAPSHOT",
        "DELTA",
    ]
    await expect(actions.nth(2).locator("li[data-field='status'] ins")).to_have_text("SUSPENDED")


async def test_deadlines_list_what_is_due_and_the_open_rejection_windows(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """TH asks SG for a retroactive check on a delivered e-Form D: the Deadlines view lists the
    request's reply and whole-check limits as due, (status open) the e-Form D's window, and
    (document RCQ, country TH) the request alone."""
    (formd_id,) = await send(running_gateway, sample_formd)
    await delivered(running_gateway, [formd_id])
    request_id = str(uuid.uuid4())
    text = RETRO_REQUEST.read_text(encoding="utf-8")
    text = re.sub(r"<cm:ReferencedMessageID>[^<]+<", f"<cm:ReferencedMessageID>{formd_id}<", text)
    await _accepted(running_gateway, _new_id(text, request_id).encode())
    await wait_for_state(running_gateway, request_id, "DELIVERED", accept_later=True)

    await console.open("#/deadlines?status=due")
    page = console.page
    await expect(page.get_by_role("heading", level=1)).to_have_text("Deadlines")
    due = page.locator(f"tr[data-message-id='{request_id}']")
    await expect(due).to_have_count(2)
    await expect(due.first).to_have_attribute("data-status", "due")
    await expect(due.first).to_contain_text("OCP Rule 18")
    await expect(due.first).to_contain_text("TH → SG")
    await expect(page.locator("tr[data-status='open']")).to_have_count(0)
    assert await console.unnamed_controls() == []
    await console.shot("deadlines")

    await page.get_by_label("Status").select_option("open")
    await page.get_by_role("button", name="Show deadlines").click()
    window = page.locator(f"tr[data-message-id='{formd_id}']")
    await expect(window).to_have_attribute("data-status", "open")
    await expect(window).to_contain_text("rejection window")
    assert "status=open" in page.url

    await page.get_by_label("Status").select_option("")
    await page.get_by_label("Document").select_option("RCQ")
    await page.get_by_label("Country").select_option("TH")
    await page.get_by_role("button", name="Show deadlines").click()
    await expect(page.locator(f"tr[data-message-id='{request_id}']")).to_have_count(2)
    await expect(page.locator(f"tr[data-message-id='{formd_id}']")).to_have_count(0)
    assert "type=RCQ" in page.url and "country=TH" in page.url
    await console.go("#/deadlines?status=open")
    window = page.locator(f"tr[data-message-id='{formd_id}']")
    await window.get_by_role("link", name=formd_id).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(formd_id)
