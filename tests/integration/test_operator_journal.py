"""Issue 16 §1, §5, §8 against a running gateway: refusals journalled, search, dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import io
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import Gateway
from gateway.core.envelope import MEMBER_STATES
from gateway.core.states import MessageState
from gateway.core.topology import Topology
from gateway.journal import open_journal
from gateway.journal.contract import Refusal
from tests.conftest import delete_topology, make_settings, with_message_id
from tests.integration.helpers import base_url, inbox, submit, without_element
from tests.journal.conftest import fresh_postgres_journal, make_record
from tests.pki_fixtures import PkiBundle

OLD = datetime(2020, 3, 1, 8, 0, tzinfo=UTC)

pytestmark = pytest.mark.rabbitmq


async def _get(
    session: aiohttp.ClientSession, gateway: Gateway, path: str, **headers: str
) -> tuple[int, Any]:
    async with session.get(base_url(gateway) + path, headers=headers) as response:
        if response.content_type == "text/csv":
            return response.status, await response.text()
        return response.status, await response.json(content_type=None)


async def _ok(session: aiohttp.ClientSession, gateway: Gateway, path: str) -> Any:
    status, body = await _get(session, gateway, path)
    assert status == 200, (path, body)
    return body


async def _post(
    session: aiohttp.ClientSession, gateway: Gateway, path: str, body: object
) -> tuple[int, Any]:
    async with session.post(base_url(gateway) + path, json=body) as response:
        return response.status, await response.json(content_type=None)


async def _wait_state(
    session: aiohttp.ClientSession, gateway: Gateway, message_id: str, states: set[str]
) -> None:
    for _ in range(200):
        status, body = await _get(session, gateway, f"/v1/messages/{message_id}")
        if status == 200 and body["state"] in states:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{message_id} never reached {states}")


# --- §1 refusals --------------------------------------------------------------------------------


async def test_refusals_are_journalled_listed_counted_and_never_block_the_id(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Every kind of refusal gets a journal entry; the API lists, filters, counts and exports it."""
    gateway = running_gateway
    refused_id = str(uuid.uuid4())
    broken = without_element(with_message_id(sample_formd, refused_id), "Consignee")
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, gateway, broken)
        assert status == 422, problem
        status, problem, _ = await submit(session, gateway, b"<not-xml")
        assert (status, problem["code"]) == (400, "malformed-xml")
        async with session.post(
            base_url(gateway) + "/v1/messages", data=b"x", headers={"Content-Type": "text/plain"}
        ) as response:
            assert response.status == 415
        first = str(uuid.uuid4())
        assert (await submit(session, gateway, with_message_id(sample_formd, first)))[0] == 202
        same_number = with_message_id(sample_formd, first).replace(
            first.encode(), str(uuid.uuid4()).encode()
        )
        status, problem, _ = await submit(session, gateway, same_number)
        assert (status, problem["code"]) == (409, "duplicate-business-key")

        listed = (await _ok(session, gateway, "/v1/refusals"))["refusals"]
        assert len(listed) == 4
        by_code = {r["code"]: r for r in listed}
        schema = next(r for r in listed if r["message_id"] == refused_id)
        assert schema["state"] == "REJECTED"
        assert (schema["sender"], schema["receiver"], schema["document_type"]) == (
            "SG",
            "TH",
            "EFD",
        )
        assert schema["findings"], schema
        assert schema["payload_kept"] is True
        assert schema["digest_sha256"] and schema["size"] == len(broken)
        assert by_code["malformed-xml"]["sender"] is None
        assert by_code["unsupported-media-type"]["digest_sha256"] is None
        assert by_code["duplicate-business-key"]["state"] == "DUPLICATE"

        detail = await _ok(session, gateway, f"/v1/refusals/{schema['refusal_id']}")
        assert detail["code"] == schema["code"]
        async with session.get(
            base_url(gateway) + f"/v1/refusals/{schema['refusal_id']}/document"
        ) as response:
            assert response.status == 200
            assert await response.read() == broken

        only = await _ok(session, gateway, "/v1/refusals?code=duplicate-business-key&sender=SG")
        assert [r["code"] for r in only["refusals"]] == ["duplicate-business-key"]
        status, text = await _get(session, gateway, "/v1/refusals?format=csv")
        assert status == 200
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {r["code"] for r in rows} == set(by_code)

        stats = await _ok(session, gateway, "/v1/stats")
        assert stats["refused"]["total"] == 4
        assert stats["refused"]["by_state"] == {"REJECTED": 3, "DUPLICATE": 1}
        assert stats["refused"]["by_sender"]["SG"] == 2

        # The refused message id is free for a valid submission.
        status, body, _ = await submit(session, gateway, with_message_id(sample_formd, refused_id))
        assert status == 202, body


async def test_refusal_is_still_4xx_when_it_cannot_be_journalled(
    running_gateway: Gateway, sample_formd: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    """With the refusals table gone from under it, the caller still gets the original 422."""
    database = running_gateway.settings.journal.url.removeprefix("sqlite://")
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE refusals")
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        assert "refusals" not in tables, (database, tables)
    broken = without_element(with_message_id(sample_formd), "Consignee")
    async with aiohttp.ClientSession() as session:
        status, problem, _ = await submit(session, running_gateway, broken)
        assert status == 422, problem
        assert (await submit(session, running_gateway, with_message_id(sample_formd)))[0] == 202
        # The journal healed itself (reopened, tables created again), without that refusal.
        assert (await _ok(session, running_gateway, "/v1/refusals"))["refusals"] == []
    assert "refusal_not_journalled" in capsys.readouterr().out


# --- §5 search ----------------------------------------------------------------------------------


async def test_search_by_number_type_parties_with_cursor_and_csv(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Search finds by document number and id; cursors page without repeats; CSV exports."""
    gateway = running_gateway
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with aiohttp.ClientSession() as session:
        for message_id in ids:
            assert (await submit(session, gateway, with_message_id(sample_formd, message_id)))[
                0
            ] == 202
        number = f"SG26-CO-{ids[1][:8].upper()}"
        found = await _ok(session, gateway, f"/v1/messages?document_id={number}")
        assert [m["message_id"] for m in found["messages"]] == [ids[1]]
        found = await _ok(session, gateway, f"/v1/messages?message_id={ids[2]}")
        assert [m["message_id"] for m in found["messages"]] == [ids[2]]
        assert (await _ok(session, gateway, "/v1/messages?document_type=ACDD"))["messages"] == []

        seen: list[str] = []
        path: str | None = "/v1/messages?sender=SG&receiver=TH&document_type=EFD&limit=1"
        while path is not None:
            page = await _ok(session, gateway, path)
            seen += [m["message_id"] for m in page["messages"]]
            path = page["next"]
        assert seen == list(reversed(ids))  # newest first, each once

        status, text = await _get(
            session, gateway, "/v1/messages?document_type=EFD", Accept="text/csv"
        )
        assert status == 200
        assert {r["message_id"] for r in csv.DictReader(io.StringIO(text))} == set(ids)

        for bad, parameter in (
            ("sender=th", "sender"),
            ("receiver=XX", "receiver"),
            ("since=yesterday", "since"),
            ("until=2026-01-01T00:00:00Z&since=2026-02-01T00:00:00Z", "until"),
            ("cursor=%21%21", "cursor"),
            ("cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwgIngiXQ", "cursor"),  # a naive time
            ("document_id=", "document_id"),
        ):
            status, problem = await _get(session, gateway, f"/v1/messages?{bad}")
            assert (status, problem["code"], problem["parameter"]) == (
                400,
                "parameter-invalid",
                parameter,
            ), bad


async def test_deadlines_list_every_open_check_however_old_a_page_at_a_time(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """GET /v1/deadlines finds a retroactive check of 2020 never replied to behind newer
    messages, pages oldest first with ``next``, narrows by type and country, refuses bad
    parameters (issue 18: every open or overdue limit, however old the message)."""
    gateway = running_gateway
    journal = gateway.journal
    assert journal is not None
    old = replace(
        make_record(b"<old/>"),
        sender="TH",
        receiver="SG",
        document_type="RCQ",
        document_id=None,
        received_at=OLD,
    )
    await journal.record_accepted(old, b"<old/>", at=OLD)
    await journal.transition(old.message_id, MessageState.QUEUED, at=OLD)
    await journal.claim_delivery(old.message_id, at=OLD)
    await journal.mark_delivered(old.message_id, at=OLD)
    ids = [str(uuid.uuid4()) for _ in range(3)]
    async with aiohttp.ClientSession() as session:
        for message_id in ids:
            sent = await submit(session, gateway, with_message_id(sample_formd, message_id))
            assert sent[0] == 202
        for message_id in ids:
            await _wait_state(session, gateway, message_id, {"DELIVERED", "RECEIPTED"})
        overdue = await _ok(session, gateway, "/v1/deadlines?status=overdue")
        rcq = await _ok(session, gateway, "/v1/deadlines?type=RCQ&country=TH")
        other = await _ok(session, gateway, "/v1/deadlines?type=RCQ&country=MY")
        seen: list[str] = []
        path: str | None = "/v1/deadlines?limit=2"
        while path is not None:
            page = await _ok(session, gateway, path)
            seen += [m["message_id"] for m in page["messages"]]
            path = page["next"]
        bad = [
            await _get(session, gateway, f"/v1/deadlines?{query}")
            for query in ("status=soon", "type=ACDD", "country=XX", "cursor=%21")
        ]
    assert [m["message_id"] for m in overdue["messages"]] == [old.message_id]
    statuses = {d["name"]: d["status"] for d in overdue["messages"][0]["deadlines"]}
    assert statuses == {"reply": "overdue", "whole check": "overdue"}
    assert [m["message_id"] for m in rcq["messages"]] == [old.message_id]
    assert other["messages"] == []
    assert seen[0] == old.message_id and set(ids) <= set(seen)
    assert len(seen) == len(set(seen))
    assert [(status, body["parameter"]) for status, body in bad] == [
        (400, "status"),
        (400, "type"),
        (400, "country"),
        (400, "cursor"),
    ]


# --- §8 dead letters ----------------------------------------------------------------------------


async def test_dead_letters_filter_page_preview_discard_and_bulk_replay(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """Dead letters page by time of death; a preview changes nothing; discard keeps the entry."""
    gateway = running_gateway
    folder = inbox(gateway, "TH")
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("blocked: a file where the folder should be")
    ids = [str(uuid.uuid4()) for _ in range(2)]
    async with aiohttp.ClientSession() as session:
        for message_id in ids:
            assert (await submit(session, gateway, with_message_id(sample_formd, message_id)))[
                0
            ] == 202
            await _wait_state(session, gateway, message_id, {"DEAD"})
        page = await _ok(
            session, gateway, "/v1/dead-letters?receiver=TH&reason=retries-exhausted&limit=1"
        )
        assert [d["message_id"] for d in page["dead_letters"]] == [ids[1]]  # died last
        rest = await _ok(session, gateway, page["next"])
        assert [d["message_id"] for d in rest["dead_letters"]] == [ids[0]]
        assert (await _ok(session, gateway, "/v1/dead-letters?receiver=MY"))["dead_letters"] == []

        status, preview = await _post(
            session,
            gateway,
            "/v1/dead-letters/replay",
            {
                "filter": {"receiver": "TH", "reason": "retries-exhausted"},
                "reason": "check",
                "operator": "ops-alice",
                "dry_run": True,
            },
        )
        assert status == 200, preview
        assert preview["count"] == 2
        assert preview["by_receiver"] == {"TH": {"count": 2, "adapter": "drop-folder"}}
        assert len((await _ok(session, gateway, "/v1/dead-letters"))["dead_letters"]) == 2

        status, problem = await _post(
            session, gateway, f"/v1/dead-letters/{ids[0]}/discard", {"reason": "x"}
        )
        assert (status, problem["code"]) == (422, "replay-reason-required")
        status, discarded = await _post(
            session,
            gateway,
            f"/v1/dead-letters/{ids[0]}/discard",
            {"reason": "superseded by a replacement", "operator": "ops-alice"},
        )
        assert status == 200, discarded
        assert discarded["parked_copy_removed"] is True
        view = await _ok(session, gateway, f"/v1/messages/{ids[0]}")
        assert view["state"] == "DISCARDED"
        assert "discarded by ops-alice" in view["timeline"][-1]["detail"]
        status, problem = await _post(
            session,
            gateway,
            f"/v1/dead-letters/{ids[0]}/discard",
            {"reason": "again", "operator": "ops-alice"},
        )
        assert (status, problem["code"]) == (409, "discard-refused")

        folder.unlink()
        status, replayed = await _post(
            session,
            gateway,
            "/v1/dead-letters/replay",
            {"message_ids": ids, "reason": "TH repaired", "operator": "ops-alice"},
        )
        assert status == 202, replayed
        assert (replayed["count"], replayed["replayed"], replayed["not_dead"]) == (
            1,
            1,
            [ids[0]],
        )
        await _wait_state(session, gateway, ids[1], {"DELIVERED", "RECEIPTED", "ANSWERED"})
        assert (await _ok(session, gateway, f"/v1/messages/{ids[0]}"))["state"] == "DISCARDED"


# --- §9 retention, as the running gateway's own job ---------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def retention_gateway(
    request: pytest.FixtureRequest, tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle
) -> AsyncIterator[Gateway]:
    """A running gateway whose retention job runs every 0.5 s with retention_days = 1, on a
    journal seeded with 30 messages and a refusal back-dated to 2020 (one backend each)."""
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite://{tmp_path / 'journal.db'}"
        else:
            url = await stack.enter_async_context(fresh_postgres_journal())
        journal = await open_journal(url)
        try:
            for i in range(30):
                payload = f"<old n='{i}'/>".encode()
                record = make_record(payload, received_at=OLD)
                await journal.record_accepted(record, payload, at=OLD)
            await journal.record_refusal(
                Refusal(
                    refusal_id=str(uuid.uuid4()),
                    state=MessageState.REJECTED,
                    at=OLD,
                    channel="http",
                    size=1,
                    digest=None,
                    error_code="malformed-xml",
                    status=400,
                ),
                None,
            )
        finally:
            await journal.close()
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        settings = make_settings(tmp_path, amqp_url, prefix, rsa_pki.directory)
        settings = replace(
            settings,
            journal=replace(
                settings.journal,
                url=url,
                retention_days=1,
                allow_short_retention=True,
                retention_check_seconds=0.5,
                archive_dir=str(tmp_path / "archive"),
            ),
        )
        gateway = Gateway(settings)
        await gateway.start(port=0)
        try:
            assert await gateway.broker.wait_connected(15)
            yield gateway
        finally:
            await gateway.stop()
            await delete_topology(
                amqp_url, Topology(prefix), MEMBER_STATES, gateway.broker.retry_delays_ms
            )


async def test_running_gateway_archives_and_purges_2020_rows_and_keeps_new_ones(
    retention_gateway: Gateway, sample_formd: bytes
) -> None:
    """The gateway's own job archives and purges the 2020 rows; a document sent now stays."""
    gateway = retention_gateway
    message_id = str(uuid.uuid4())
    archive = Path(gateway.settings.journal.archive_dir)
    async with aiohttp.ClientSession() as session:
        assert (await submit(session, gateway, with_message_id(sample_formd, message_id)))[0] == 202
        for _ in range(150):  # the bundle is written first, the rows purged after it
            old = await _ok(session, gateway, "/v1/messages?until=2021-01-01T00:00:00Z")
            refused = await _ok(session, gateway, "/v1/refusals")
            if not old["messages"] and not refused["refusals"]:
                break
            await asyncio.sleep(0.1)
        assert (old["messages"], refused["refusals"]) == ([], []), "nothing was purged"
        bundles = sorted(archive.glob("*.jsonl.gz"))
        assert bundles, "the retention job wrote no bundle"
        lines = []
        for path in bundles:
            with gzip.open(path, "rt", encoding="utf-8") as bundle:
                lines += [json.loads(line) for line in bundle]
        assert sum(1 for line in lines if line["kind"] == "message") == 30
        assert sum(1 for line in lines if line["kind"] == "refusal") == 1
        assert (await _ok(session, gateway, f"/v1/messages/{message_id}"))["state"]
        async with session.get(base_url(gateway) + "/metrics") as response:
            exposition = await response.text()
    node = gateway.settings.node.name
    ran = re.search(
        rf'^asw_retention_runs_total{{node="{re.escape(node)}",outcome="ran"}} (\S+)$',
        exposition,
        re.MULTILINE,
    )
    assert ran and float(ran.group(1)) >= 1, "the node that ran retention is not in /metrics"
    assert f'asw_retention_last_run_timestamp_seconds{{node="{node}"}}' in exposition


async def test_folder_refusals_are_journalled_with_the_folder_owner_as_caller(
    running_gateway: Gateway, sample_formd: bytes
) -> None:
    """A spoofed document dropped in MY's outbox is journalled: caller MY, claimed sender SG."""
    outbox = Path(running_gateway.settings.parties["MY"].options["outbox"])
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / ".spoofed.tmp").write_bytes(with_message_id(sample_formd))
    (outbox / ".spoofed.tmp").replace(outbox / "spoofed.xml")
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            found = (await _ok(session, running_gateway, "/v1/refusals?channel=folder"))["refusals"]
            if found:
                break
            await asyncio.sleep(0.1)
        assert [(r["caller"], r["sender"], r["code"]) for r in found] == [
            ("MY", "SG", "sender-not-allowed")
        ]
