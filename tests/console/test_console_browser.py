"""The operator console in a real headless Chromium against a real gateway and RabbitMQ.

Each test submits documents through the HTTP API, then works the console as an operator
would: by clicking, typing and (in one test) with the keyboard alone. Screenshots of each view
are written to the test's temporary directory (and to ASW_CONSOLE_SHOTS when set).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from tests.conftest import CPU_HEAVY, delete_topology, make_settings, with_message_id
from tests.console.harness import MISSING_PLAYWRIGHT, VIEWPORT, Console
from tests.integration.helpers import base_url, inbox, submit, wait_for_file
from tests.pki_fixtures import PkiBundle

try:
    from playwright.async_api import Browser, expect
except ImportError as exc:  # a clear failure, never a skip
    raise ImportError(MISSING_PLAYWRIGHT) from exc

pytestmark = [pytest.mark.rabbitmq, CPU_HEAVY]

DELIVERED_OR_LATER = ("DELIVERED", "RECEIPTED", "ANSWERED")
"""The receiver has it; a delivery receipt may already have moved it on to RECEIPTED."""
HANDED_OVER = re.compile(r"^(DELIVERED|RECEIPTED|ANSWERED)$")


# --- helpers -----------------------------------------------------------------------------------


async def send(gateway: Gateway, sample: bytes, count: int = 1) -> list[str]:
    """Submit ``count`` fresh copies of the sample (SG -> TH); return their message ids."""
    ids = []
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            message_id = str(uuid.uuid4())
            status, body, _ = await submit(session, gateway, with_message_id(sample, message_id))
            assert status == 202, body
            ids.append(message_id)
    return ids


async def delivered(gateway: Gateway, ids: list[str]) -> None:
    """Wait until every message is in TH's drop folder."""
    for message_id in ids:
        assert await wait_for_file(inbox(gateway, "TH") / f"{message_id}.xml"), message_id


async def message(gateway: Gateway, message_id: str) -> dict[str, Any]:
    """GET /v1/messages/{id} as JSON."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base_url(gateway)}/v1/messages/{message_id}") as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def wait_for_state(
    gateway: Gateway,
    message_id: str,
    state: str,
    timeout: float = 20.0,
    *,
    accept_later: bool = False,
) -> None:
    """Poll the journal through the API until the message is in ``state`` (or, for DELIVERED
    with ``accept_later``, a state that follows delivery)."""
    wanted = DELIVERED_OR_LATER if accept_later and state == "DELIVERED" else (state,)
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = (await message(gateway, message_id))["state"]
        if seen in wanted:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{message_id} is {seen}, not {state}, after {timeout} s")


async def replay_by_api(gateway: Gateway, message_id: str, *, expected: int) -> dict[str, Any]:
    """POST a replay as another operator would; return the JSON answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base_url(gateway)}/v1/dead-letters/{message_id}/replay",
            json={"reason": "TH fixed", "operator": "Cleo"},
        ) as response,
    ):
        body: dict[str, Any] = await response.json(content_type=None)
        assert response.status == expected, body
        return body


def block(gateway: Gateway, country: str) -> None:
    """Put a file where the country's drop folder should be, so every delivery fails."""
    folder = inbox(gateway, country)
    if folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")


def unblock(gateway: Gateway, country: str) -> None:
    """Remove the file that blocks the country's drop folder."""
    inbox(gateway, country).unlink()


async def handed_over_count(console: Console, country: str) -> int:
    """The sum of the DELIVERED, RECEIPTED and ANSWERED cells of a country's overview row."""
    total: int = await console.page.locator(f"tr[data-country='{country}']").evaluate(
        """(row, states) => states
            .map((s) => row.querySelector(`td[data-state='${s}']`))
            .reduce((sum, cell) => sum + (cell ? Number(cell.textContent) : 0), 0)""",
        list(DELIVERED_OR_LATER),
    )
    return total


async def wait_for_count(console: Console, country: str, wanted: int) -> None:
    """Wait (through the overview's own refresh) until a country shows ``wanted`` handed over."""
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline:
        if await handed_over_count(console, country) == wanted:
            return
        await asyncio.sleep(0.2)
    assert await handed_over_count(console, country) == wanted


async def dead_letter(gateway: Gateway, sample: bytes) -> str:
    """A message to TH that used up its (short) retry schedule and is parked as DEAD."""
    block(gateway, "TH")
    (message_id,) = await send(gateway, sample)
    await wait_for_state(gateway, message_id, "DEAD")
    return message_id


# --- overview ----------------------------------------------------------------------------------


async def test_overview_shows_queue_depth_and_delivered_counts_per_country(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """The overview has a row for TH with its queue depth, DELIVERED count and totals."""
    ids = await send(running_gateway, sample_formd, 2)
    await delivered(running_gateway, ids)
    await console.open("#/overview")
    page = console.page
    await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
    th = page.locator("tr[data-country='TH']")
    await expect(th.locator("td[data-state='DELIVERED']")).to_be_visible()
    await wait_for_count(console, "TH", 2)
    await expect(th.locator("td[data-col='queue']")).to_have_text("0")
    await expect(page.locator("tr[data-country='SG'] td[data-col='queue']")).to_have_text("0")
    delivered_card = page.locator(".card", has_text="Delivered").locator("dd")
    assert int(await delivered_card.inner_text()) >= 2  # receipts back to SG count too
    await expect(page.locator(".card", has_text="Dead letters").locator("dd")).to_have_text("0")
    await expect(page.locator(".updated-time")).to_contain_text("UTC")
    assert await console.unnamed_controls() == []
    await console.shot("overview")


async def test_overview_refreshes_by_itself_until_paused(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """New deliveries appear without a reload; the pause toggle stops the refresh and says so."""
    first = await send(running_gateway, sample_formd)
    await delivered(running_gateway, first)
    await console.open("#/overview")
    page = console.page
    await wait_for_count(console, "TH", 1)
    updated = await page.locator(".updated-time").get_attribute("datetime")
    second = await send(running_gateway, sample_formd)
    await delivered(running_gateway, second)
    await wait_for_count(console, "TH", 2)
    assert await page.locator(".updated-time").get_attribute("datetime") != updated

    pause = page.get_by_role("button", name="Pause auto-refresh")
    await pause.click()
    toggle = page.locator("#pause-refresh")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect(toggle).to_have_text("Resume auto-refresh")
    await delivered(running_gateway, await send(running_gateway, sample_formd))
    await page.wait_for_timeout(6_500)
    assert await handed_over_count(console, "TH") == 2  # paused: still the old number
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "false")
    await wait_for_count(console, "TH", 3)


# --- messages ----------------------------------------------------------------------------------


async def test_message_detail_shows_the_timeline_and_the_document_only_on_request(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """From the list, a message opens with its timeline; its XML appears only on View document."""
    ids = await send(running_gateway, sample_formd)
    await delivered(running_gateway, ids)
    await console.open("#/messages")
    page = console.page
    await expect(page.locator(f"tr[data-message-id='{ids[0]}']")).to_contain_text("SG → TH")
    await console.shot("messages")
    await page.get_by_role("link", name=ids[0]).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(ids[0])
    timeline = page.get_by_role("table", name="Timeline")
    states = await timeline.locator("tbody tr").evaluate_all(
        "(rows) => rows.map((row) => row.dataset.state)"
    )
    assert states[:2] == ["RECEIVED", "ACCEPTED"], states
    assert "DELIVERING" in states and "DELIVERED" in states, states
    await expect(page.locator(".view-head [data-state]")).to_have_text(HANDED_OVER)
    deadlines = page.get_by_role("table", name="Deadlines")  # OCP Rule 13(3), issue 18
    await expect(deadlines.locator("tr[data-status='open']")).to_contain_text("rejection window")
    body = page.locator("body")
    await expect(body).not_to_contain_text("Ball bearings")
    await expect(page.locator("pre.document")).to_have_count(0)
    await console.shot("message-detail")
    await page.get_by_role("button", name="View document").click()
    document = page.get_by_label("Stored XML document")
    await expect(document).to_contain_text("Ball bearings")
    await expect(document).to_contain_text(ids[0])
    await page.get_by_role("button", name="Hide document").click()
    await expect(body).not_to_contain_text("Ball bearings")


async def test_message_document_is_shown_as_data_on_request(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """View as data shows the stored document as a tree of its elements, values and units."""
    ids = await send(running_gateway, sample_formd)
    await console.open(f"#/messages/{ids[0]}")
    page = console.page
    await expect(page.get_by_role("heading", level=1)).to_contain_text(ids[0])
    await page.get_by_role("button", name="View as data").click()
    data = page.get_by_role("region", name="Stored document as data")
    await expect(data).to_contain_text("Ball bearings")
    await expect(data).to_contain_text("GovernmentAgencyGoodsItem 2")
    await expect(data).to_contain_text("unitCode KGM")
    await expect(page.locator("pre.document")).to_have_count(0)
    await page.get_by_role("button", name="Hide data").click()
    await expect(page.locator("body")).not_to_contain_text("Ball bearings")


async def test_messages_are_filtered_and_paged_newest_first(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """Filters narrow the list; pages of two go back in time with Older and return with Newest."""
    ids = await send(running_gateway, sample_formd, 3)
    await delivered(running_gateway, ids)
    await console.open("#/messages?receiver=TH&limit=2")
    page = console.page
    rows = page.locator("tbody tr[data-message-id]")
    await expect(rows).to_have_count(2)
    assert await rows.evaluate_all("(r) => r.map((x) => x.dataset.messageId)") == [
        ids[2],
        ids[1],
    ]
    await page.get_by_role("link", name="Older messages").click()
    await expect(rows).to_have_count(1)
    await expect(rows).to_have_attribute("data-message-id", ids[0])
    await page.get_by_role("link", name="Newest").click()
    await expect(rows).to_have_count(2)

    await page.get_by_label("Receiver").fill("my")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.locator("caption")).to_contain_text("0 messages")
    await expect(page.get_by_text("No message matches these filters.")).to_be_visible()
    assert "receiver=MY" in page.url

    await page.get_by_label("Sender").fill("sg")
    await page.get_by_label("Receiver").fill("TH")
    await page.get_by_label("Test messages").select_option("false")
    await page.get_by_label("Per page").select_option("25")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows).to_have_count(3)
    assert "sender=SG" in page.url and "test=false" in page.url
    await page.get_by_label("State").select_option("DEAD")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(rows).to_have_count(0)
    assert "state=DEAD" in page.url


# --- dead letters ------------------------------------------------------------------------------


async def test_dead_letter_is_inspected_and_replayed_from_the_console_until_delivered(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """A parked message shows its reason and timeline; a confirmed replay gets it delivered."""
    message_id = await dead_letter(running_gateway, sample_formd)
    await console.open("#/dead-letters")
    page = console.page
    row = page.locator(f"tr[data-message-id='{message_id}']")
    await expect(row.locator("code.reason")).to_have_text("retries-exhausted")
    await expect(row).to_contain_text("peer-unavailable")
    await console.shot("dead-letters")

    await row.get_by_role("link", name=message_id).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(message_id)
    await expect(page.locator("code.reason")).to_have_text("retries-exhausted")
    await expect(page.locator("code.cause")).to_have_text("peer-unavailable")
    timeline = page.get_by_role("table", name="Timeline")
    await expect(timeline.locator("tbody tr").last).to_have_attribute("data-state", "DEAD")
    await expect(timeline.locator("tr[data-state='RETRYING']").first).to_contain_text(
        "peer-unavailable"
    )
    await expect(page.get_by_text("Sender → receiver")).to_be_visible()
    await expect(page.locator("body")).not_to_contain_text("Ball bearings")

    unblock(running_gateway, "TH")
    await page.get_by_label("Reason for the replay (required)").fill("TH inbox repaired, OPS-1")
    await page.get_by_label("Your name (required)").fill("Ana Operator")
    await page.get_by_role("button", name="Review replay…").click()
    preview = page.get_by_role("region", name="Confirm the replay")
    await expect(preview).to_contain_text("moves from DEAD back to QUEUED")
    await expect(preview).to_contain_text("delivery queue for TH")
    await expect(preview).to_contain_text("Ana Operator")
    await expect(page.get_by_role("heading", name="Confirm the replay")).to_be_focused()
    await console.shot("dead-letter-replay-confirm")
    assert not (inbox(running_gateway, "TH") / f"{message_id}.xml").exists()

    await preview.get_by_role("button", name="Replay message").click()
    outcome = page.locator(".success")
    await expect(outcome).to_contain_text("Replayed")
    await expect(outcome).to_be_focused()
    await expect(page.get_by_label("Reason for the replay (required)")).to_be_hidden()
    await expect(outcome.locator(".replay-state [data-state]")).to_have_text(
        HANDED_OVER, timeout=20_000
    )
    await expect(page.locator(".view-head [data-state]")).to_have_text(HANDED_OVER)
    assert await wait_for_file(inbox(running_gateway, "TH") / f"{message_id}.xml")
    await console.shot("dead-letter-replayed")
    await page.get_by_role("link", name="Open the message").click()
    await expect(page.locator(".view-head [data-state]")).to_have_text(HANDED_OVER)


async def test_replay_refusals_are_explained_with_the_problem_title_detail_and_code(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """Missing fields are named at the field; a replay someone else did first shows its 409."""
    message_id = await dead_letter(running_gateway, sample_formd)
    await console.open(f"#/dead-letters/{message_id}")
    page = console.page
    await page.get_by_role("button", name="Review replay…").click()
    reason = page.get_by_label("Reason for the replay (required)")
    await expect(reason).to_be_focused()
    await expect(reason).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_text("Enter the reason for the replay.")).to_be_visible()
    await expect(page.get_by_text("Enter your name.")).to_be_visible()
    await expect(page.get_by_role("region", name="Confirm the replay")).to_have_count(0)

    await reason.fill("second try")
    await page.get_by_label("Your name (required)").fill("Ben")
    await page.get_by_role("button", name="Review replay…").click()
    # Meanwhile another operator fixes TH and replays the message, and it is delivered.
    unblock(running_gateway, "TH")
    await replay_by_api(running_gateway, message_id, expected=202)
    await wait_for_state(running_gateway, message_id, "DELIVERED", accept_later=True)
    refusal = await replay_by_api(running_gateway, message_id, expected=409)
    await page.get_by_role("button", name="Replay message").click()
    problem = page.get_by_role("alert")
    await expect(problem.locator(".problem-title")).to_have_text(
        f"Replay refused: {refusal['title']}"
    )
    await expect(problem.locator(".problem-detail")).to_contain_text(message_id)
    await expect(problem.locator(".problem-code")).to_have_text(refusal["code"])
    await expect(problem).to_contain_text("HTTP 409")
    await console.shot("replay-refused")


async def test_unknown_message_shows_the_not_found_problem(
    running_gateway: Gateway, console: Console
) -> None:
    """Opening a message the gateway does not know shows the 404 problem's title and code."""
    unknown = str(uuid.uuid4())
    await console.open(f"#/messages/{unknown}")
    problem = console.page.get_by_role("alert")
    await expect(problem.locator(".problem-title")).to_have_text("Not found")
    await expect(problem.locator(".problem-code")).to_have_text("not-found")
    await expect(problem.locator(".problem-detail")).to_contain_text(unknown)


# --- certificates and partners -----------------------------------------------------------------


async def test_certificates_view_lists_crls_expiring_within_the_chosen_window(
    running_gateway: Gateway, console: Console
) -> None:
    """The test PKI's 30-day CRLs show for every country, marked by urgency; 7 days hides them."""
    await console.open("#/certificates")
    page = console.page
    await page.get_by_label("Expiring within").select_option("60")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("caption")).to_contain_text("within 60 days")
    crls = page.locator("tbody tr[data-kind='crl']")
    await expect(crls).to_have_count(len(running_gateway.settings.parties))
    await expect(page.locator("tr[data-country='TH'][data-kind='crl']")).to_contain_text("CRL")
    await expect(crls.first.locator(".badge")).to_have_text("Soon")
    await expect(page.locator("tr[data-kind='crl'].urgency-soon")).to_have_count(10)
    await expect(page.get_by_text("Trust material is loaded for")).to_contain_text("TH")
    own = page.locator("tr[data-own='signer']")
    await expect(own).to_have_count(len(running_gateway.settings.parties))
    await expect(page.locator("tr[data-own='gateway']").first).to_contain_text("receipts")
    await console.shot("certificates")
    await page.get_by_label("Expiring within").select_option("7")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_text("Nothing expires within 7 days.")).to_be_visible()


async def test_partners_view_puts_unhealthy_adapters_first_and_refreshes(
    running_gateway: Gateway, console: Console
) -> None:
    """Every receiver is listed; a blocked TH shows Unreachable first, then heals by itself."""
    block(running_gateway, "TH")
    await console.open("#/partners")
    page = console.page
    rows = page.locator("tbody tr[data-country]")
    await expect(rows).to_have_count(len(running_gateway.settings.parties))
    await expect(rows.first).to_have_attribute("data-country", "TH")
    th = page.locator("tr[data-country='TH']")
    await expect(th).to_contain_text("drop-folder")
    await expect(th.locator(".badge")).to_have_text("Unreachable")
    await expect(page.locator(".card", has_text="Unhealthy").locator("dd")).to_have_text("1")
    await expect(page.locator("tr[data-country='SG'] .badge")).to_have_text("Idle")
    unblock(running_gateway, "TH")
    # Auto-refresh, no click: within two refresh periods even on a busy machine.
    await expect(th.locator(".badge")).to_have_text("Idle", timeout=15_000)
    await expect(page.locator(".card", has_text="Unhealthy").locator("dd")).to_have_text("0")


async def test_partners_view_shows_outcomes_of_a_refusing_partner(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """A partner whose deliveries all failed is Failing, with its last error and success rate."""
    block(running_gateway, "TH")
    [message_id] = await send(running_gateway, sample_formd)
    await wait_for_state(running_gateway, message_id, "DEAD")
    await console.open("#/partners")
    page = console.page
    th = page.locator("tr[data-country='TH']")
    await expect(th).to_have_attribute("data-status", "failing")
    await expect(th.locator(".badge")).to_have_text("Failing")
    await expect(th).to_contain_text("0%")
    await expect(th.locator("code").nth(1)).not_to_be_empty()  # the last error's code
    await console.shot("partners")


async def test_audit_log_view_lists_document_views_with_who_and_why(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """Viewing a stored document in the console appears in the audit log view, newest first."""
    ids = await send(running_gateway, sample_formd)
    await delivered(running_gateway, ids)
    await console.open(f"#/messages/{ids[0]}")
    page = console.page
    await page.get_by_role("button", name="View document").click()
    await expect(page.get_by_label("Stored XML document")).to_contain_text("Ball bearings")
    await console.go("#/audit")
    row = page.locator("tbody tr[data-action='document-viewed']").first
    await expect(row).to_contain_text(ids[0])
    await expect(row).to_contain_text("anonymous")
    await page.get_by_label("Action").fill("replay")
    await page.get_by_role("button", name="Show").click()
    await expect(page.get_by_text("Nothing in the audit log matches.")).to_be_visible()
    await console.go("#/audit")
    await expect(page.locator("tbody tr[data-action]").first).to_be_visible()
    await console.shot("audit-log")


async def test_every_view_says_as_of_and_warns_when_its_data_goes_stale(
    running_gateway: Gateway, console: Console
) -> None:
    """Each view shows when its data was read; when refreshes fail, a stale warning appears."""
    page = console.page
    for fragment in (
        "#/overview",
        "#/messages",
        "#/dead-letters",
        "#/refusals",
        "#/certificates",
        "#/partners",
        "#/audit",
    ):
        await console.open(fragment)
        await expect(page.locator("#as-of")).to_contain_text("As of")
        await expect(page.locator("#as-of")).to_have_attribute("data-stale", "false")
    await page.route("**/v1/**", lambda route: route.abort())
    await expect(page.locator("#as-of")).to_have_attribute("data-stale", "true", timeout=25_000)
    await expect(page.locator("#as-of")).to_contain_text("stale")
    await page.unroute("**/v1/**")
    await expect(page.locator("#as-of")).to_have_attribute("data-stale", "false", timeout=15_000)


# --- operator key ------------------------------------------------------------------------------

OPERATOR_KEY = "console-test-operator-key-7f3a"


@pytest.fixture
async def keyed_gateway(
    tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> AsyncIterator[Gateway]:
    """A real gateway with ``http.auth = "api-key"`` and an operator key."""
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, amqp_url, prefix, rsa_pki.directory)
    digest = hashlib.sha256(OPERATOR_KEY.encode()).hexdigest()
    settings = dataclasses.replace(
        settings,
        http=dataclasses.replace(settings.http, auth="api-key", operator_api_key_sha256=digest),
    )
    gateway = Gateway(settings)
    await gateway.start(port=0)
    assert await gateway.broker.wait_connected(15), "gateway did not connect to RabbitMQ"
    try:
        yield gateway
    finally:
        await gateway.stop()
        await delete_topology(
            amqp_url, Topology(prefix), MEMBER_STATES, gateway.broker.retry_delays_ms
        )


async def test_console_asks_for_the_operator_key_and_never_shows_it(
    keyed_gateway: Gateway, browser: Browser, tmp_path: Path
) -> None:
    """With api-key auth the console asks for the operator key, refuses a wrong one, hides it."""
    context = await browser.new_context(viewport=VIEWPORT, timezone_id="UTC")
    page = await context.new_page()
    page.set_default_timeout(15_000)
    tab = Console(page=page, base_url=base_url(keyed_gateway), shots=tmp_path)
    tab.watch()
    try:
        await tab.open("#/overview")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Operator key required")
        await expect(page.get_by_role("alert").locator(".problem-code")).to_have_text(
            "unauthenticated"
        )
        key = page.get_by_label("Operator key")
        await expect(key).to_have_attribute("type", "password")
        await key.fill("not-the-key")
        await page.get_by_role("button", name="Use this key").click()
        await expect(page.get_by_role("alert")).to_contain_text("The key was refused")
        await tab.shot("operator-key")

        await key.fill(OPERATOR_KEY)
        await page.get_by_role("button", name="Use this key").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Overview")
        await expect(page.locator("tr[data-country='TH']")).to_be_visible()
        await tab.go("#/partners")
        await expect(page.locator("tbody tr[data-country]")).to_have_count(10)
        html = await page.content()
        assert OPERATOR_KEY not in html, "the key must never be in the page"

        await page.get_by_role("button", name="Forget operator key").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Operator key required")
        await expect(page.get_by_role("button", name="Forget operator key")).to_be_hidden()
    finally:
        await context.close()
    assert tab.page_errors == [] and tab.csp_violations == []


# --- keyboard ----------------------------------------------------------------------------------


async def tab_until(console: Console, wanted: str, *, exact: bool = False, limit: int = 40) -> None:
    """Press Tab until the focused element's description (tag.class|name) matches ``wanted``."""
    seen = []
    for _ in range(limit):
        await console.page.keyboard.press("Tab")
        focused = await console.focused()
        seen.append(focused)
        if focused == wanted or (not exact and wanted in focused):
            return
    raise AssertionError(f"{wanted!r} was never focused; tab order: {seen}")


async def test_console_is_usable_with_the_keyboard_alone(
    running_gateway: Gateway, console: Console, sample_formd: bytes
) -> None:
    """Skip link, sections, a message and its document are reached with Tab and Enter only."""
    ids = await send(running_gateway, sample_formd)
    await delivered(running_gateway, ids)
    await console.open("#/overview")
    page = console.page
    await page.keyboard.press("Tab")
    assert (await console.focused()).startswith("a.skip-link|Skip to content")
    box = await page.locator(".skip-link").bounding_box()
    assert box is not None and box["y"] >= 0, "the skip link must be visible when focused"
    await page.keyboard.press("Enter")
    assert (await console.focused()).startswith("h1.|Overview")

    await tab_until(console, "a.|Messages", exact=True, limit=80)  # through the view, round
    outline = await page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "focus must be visible"
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_be_focused()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Messages")
    await expect(page.locator("nav a[aria-current='page']")).to_have_text("Messages")

    await tab_until(console, ids[0])
    await page.keyboard.press("Enter")
    heading = page.get_by_role("heading", level=1)
    await expect(heading).to_be_focused()
    await expect(heading).to_contain_text(ids[0])
    await tab_until(console, "View document")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Stored XML document")).to_contain_text("Ball bearings")
    await tab_until(console, "Stored XML document")  # the document scrolls with the keyboard

    await tab_until(console, "a.|Dead letters", exact=True, limit=80)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Dead letters")
    assert await console.unnamed_controls() == []
