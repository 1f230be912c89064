"""The console's oversight views in headless Chromium, against a real gateway and RabbitMQ.

Refusals (list, filters, findings), the message search by document number, and the dead
letters: a bulk replay previewed (count and where) before it is confirmed, and a discard.
Screenshots go to the test's directory and to ASW_CONSOLE_SHOTS when set (docs/img/).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp
import pytest

from gateway.app import Gateway
from tests.conftest import with_message_id
from tests.console.harness import MISSING_PLAYWRIGHT, VIEWPORT, Console
from tests.console.test_console_browser import (
    OPERATOR_KEY as KEY,
)
from tests.console.test_console_browser import (
    block,
    keyed_gateway,
    message,
    send,
    unblock,
    wait_for_state,
)
from tests.integration.helpers import base_url, submit, without_element

try:
    from playwright.async_api import Browser, expect
except ImportError as exc:  # a clear failure, never a skip
    raise ImportError(MISSING_PLAYWRIGHT) from exc

pytestmark = pytest.mark.rabbitmq
__all__ = ["keyed_gateway"]  # the api-key gateway fixture, shared with the browser tests


async def refuse(gateway: Gateway, sample: bytes) -> str:
    """Submit a Form D without its consignee (422); return the refused message id."""
    message_id = str(uuid.uuid4())
    broken = without_element(with_message_id(sample, message_id), "Consignee")
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, gateway, broken)
        assert status == 422, problem
        status, problem, _ = await submit(session, gateway, b"<not-xml")
        assert status == 400, problem
    return message_id


async def test_refusals_appear_filter_by_sender_and_code_and_show_their_findings(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """A refused submission is listed; sender and code filters narrow it; detail has findings."""
    refused_id = await refuse(running_gateway, sample_formd)
    await console.open("#/refusals")
    page = console.page
    await expect(page.get_by_role("heading", level=1)).to_have_text("Refusals")
    rows = page.locator("tbody tr[data-refusal-id]")
    await expect(rows).to_have_count(2)
    row = page.locator(f"tr[data-message-id='{refused_id}']")
    await expect(row).to_contain_text("SG → TH")
    await expect(row.locator("code")).to_have_text("schema-violation")
    await expect(page.locator("#as-of")).to_contain_text("As of")
    csv = await page.get_by_role("link", name="Export CSV").get_attribute("href")
    assert csv is not None and csv.startswith("/v1/refusals?") and "format=csv" in csv
    assert await console.unnamed_controls() == []
    await console.shot("console-refusals")

    await page.get_by_label("Sender").fill("sg")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows).to_have_count(1)
    assert "sender=SG" in page.url
    await page.get_by_label("Error code").fill("malformed-xml")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.get_by_text("No refusal matches these filters.")).to_be_visible()
    await console.open("#/refusals?code=malformed-xml")
    await expect(rows).to_have_count(1)
    await expect(rows.locator("code")).to_have_text("malformed-xml")

    await console.open("#/refusals?sender=SG")
    await row.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Refusal")
    findings = page.get_by_role("table", name="Findings").locator("tr.finding")
    await expect(findings.first).to_contain_text("Consignee")
    await console.shot("console-refusal-detail")


async def test_message_search_finds_a_message_by_its_document_number(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """Typing a document number into the search lists only that message, with a CSV link."""
    ids = await send(running_gateway, sample_formd, 2)
    number = (await message(running_gateway, ids[1]))["document_id"]
    assert number
    await console.open("#/messages?sender=SG")  # TH's delivery receipts are messages too
    page = console.page
    rows = page.locator("tbody tr[data-message-id]")
    await expect(rows).to_have_count(2)
    await page.get_by_label("Document number").fill(number)
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows).to_have_count(1)
    await expect(rows).to_have_attribute("data-message-id", ids[1])
    csv = await page.get_by_role("link", name="Export CSV").get_attribute("href")
    assert csv is not None and f"document_id={number}" in csv
    await console.shot("console-search")


async def test_dead_letters_are_replayed_in_bulk_after_a_preview_and_one_is_discarded(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """Replay all matching previews count and receiver first; discard parks one as DISCARDED."""
    block(running_gateway, "TH")
    ids = await send(running_gateway, sample_formd, 3)
    for message_id in ids:
        await wait_for_state(running_gateway, message_id, "DEAD")
    await console.open("#/dead-letters?receiver=TH")
    page = console.page
    rows = page.locator("tbody tr[data-message-id]")
    await expect(rows).to_have_count(3)
    await expect(rows.first.locator("code.reason")).to_have_text("retries-exhausted")

    await rows.filter(has_text=ids[0]).get_by_role("button", name=f"Discard {ids[0]}").click()
    await page.get_by_label("Reason (required)").fill("Duplicate of a paper certificate")
    await page.get_by_label("Your name (required)").fill("Ana Operator")
    await page.get_by_role("button", name="Discard message").click()
    await expect(page.locator(".outcome")).to_contain_text("DISCARDED")
    await wait_for_state(running_gateway, ids[0], "DISCARDED")
    await expect(rows).to_have_count(2, timeout=15_000)

    unblock(running_gateway, "TH")
    await console.open("#/dead-letters?receiver=TH")
    await expect(rows).to_have_count(2)
    await rows.nth(0).get_by_role("checkbox").check()
    await page.get_by_role("button", name="Replay selected…").click()
    await expect(page.get_by_label("Your name (required)")).to_have_value("Ana Operator")
    await page.get_by_role("button", name="Cancel").click()
    await page.get_by_role("button", name="Replay all matching…").click()
    await page.get_by_label("Reason (required)").fill("TH inbox repaired, OPS-7")
    await page.get_by_role("button", name="Preview replay").click()
    preview = page.locator(".preview")
    await expect(preview.locator(".preview-count")).to_have_text(
        "2 dead letters would be replayed."
    )
    await expect(preview.locator("li[data-receiver='TH']")).to_contain_text("2 to TH")
    assert (await message(running_gateway, ids[1]))["state"] == "DEAD"  # a preview changes nothing
    await console.shot("console-dead-letters")
    await page.get_by_role("button", name="Replay 2 messages").click()
    await expect(page.locator(".outcome")).to_have_text("Replayed 2 of 2.")
    for message_id in ids[1:]:
        await wait_for_state(running_gateway, message_id, "DELIVERED", accept_later=True)
    await expect(page.get_by_text("No dead letters match: nothing is parked.")).to_be_visible(
        timeout=15_000
    )
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url(running_gateway)}/v1/audit?action=replay-preview") as response,
    ):
        assert response.status == 200
        assert (await response.json())["entries"], "the preview is audited"


async def test_refusals_csv_is_exported_with_the_operator_key(
    keyed_gateway: Gateway, browser: Browser, tmp_path: Path
) -> None:
    """With api-key auth, Export CSV downloads the refusals through the key, never showing it."""
    context = await browser.new_context(viewport=VIEWPORT, timezone_id="UTC", accept_downloads=True)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    tab = Console(page=page, base_url=base_url(keyed_gateway), shots=tmp_path)
    tab.watch()
    try:
        await tab.open("#/refusals")
        await page.get_by_label("Operator key").fill(KEY)
        await page.get_by_role("button", name="Use this key").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Refusals")
        async with page.expect_download() as info:
            await page.get_by_role("link", name="Export CSV").click()
        download = await info.value
        saved = tmp_path / "refusals.csv"
        await download.save_as(saved)
        header = saved.read_text().splitlines()[0]
        assert header.startswith("refusal_id,state,at,channel"), header
        assert KEY not in await page.content()
    finally:
        await context.close()
    assert tab.page_errors == [] and tab.csp_violations == []
