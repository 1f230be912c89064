"""What a 503 means, and no broker copy storms (issue 14, points 6 and 7), with a real gateway.

- ``confirm-late-503``: the broker confirms later than ``amqp.confirm_timeout_seconds`` (set
  to 1 ms), so most submissions are answered 503 although RabbitMQ stores them. The decision
  (docs/faults.md): such a 503 says the message *may* still be delivered
  (``may_be_delivered``) and where to check (``status``: ``GET /v1/messages/{id}``); sending it
  again under the same id never hands it over twice. Each message is sent once, then once more
  if it got 503; the NSW must see each at most once, and the journal must tell the truth about
  every one of them.
- ``queued-note-failing``: the private PostgreSQL journal refuses every write of QUEUED (a
  trigger raises) while every other write works, and each message is submitted three times
  under its id with the sweep running each second. A tap queue on the gateway's route exchange
  counts what was published: one copy per message, however often it was resent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping

import aiohttp
import pytest

from asw_toolkit.processes import http_push_party
from tests.faults.conftest import GatewayFactory
from tests.faults.harness import (
    CRASH_RETRY_SCHEDULE,
    Load,
    NswThread,
    Summary,
    documents,
    journal_views,
    received,
    wait_delivered,
)
from tests.faults.outage import Answer, BrokerTap, problem_code, refused_by_code
from tests.faults.private_postgres import private_postgres

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

DELIVERED_STATES = {"DELIVERED", "RECEIPTED", "ANSWERED"}


async def _post(
    session: aiohttp.ClientSession, url: str, docs: Mapping[str, bytes], message_id: str
) -> tuple[Answer, dict[str, object]]:
    started = time.monotonic()
    async with session.post(
        url + "/v1/messages", data=docs[message_id], headers={"Content-Type": "application/xml"}
    ) as response:
        text = await response.text()
        answer = Answer(
            message_id,
            started,
            time.monotonic(),
            response.status,
            "accepted" if response.status == 202 else problem_code(response.status, text),
            "Retry-After" in response.headers,
        )
    problem = json.loads(text) if response.status != 202 else {}
    return answer, problem


async def test_late_confirm_503_says_it_may_be_delivered_and_never_twice(
    gateway_factory: GatewayFactory, report: Callable[[Summary], None]
) -> None:
    """A 503 for an unconfirmed publish names the status to check; the NSW gets it once."""
    begun = time.monotonic()
    with NswThread("TH") as nsw:
        gateway = gateway_factory(
            parties_config={"TH": http_push_party(nsw.documents_url, timeout_seconds=5)},
            amqp_extra="confirm_timeout_seconds = 0.001",
            retry_schedule=CRASH_RETRY_SCHEDULE,
        )
        await asyncio.to_thread(gateway.start)
        docs = documents(200)
        load, answers, problems = Load(), list[Answer](), dict[str, dict[str, object]]()
        async with aiohttp.ClientSession() as session:
            for round_ in range(2):  # once, then once more for each 503
                todo = [
                    i for i in docs if i not in load.accepted and (round_ == 0 or i in problems)
                ]
                for message_id in todo:
                    if round_ == 0:
                        load.sent.append(message_id)
                    answer, problem = await _post(session, gateway.url, docs, message_id)
                    answers.append(answer)
                    if answer.status == 202:
                        load.accepted[message_id] = answer.ended
                    else:
                        problems[message_id] = problem
                        load.refusals[answer.code] += 1
        refused_once = [i for i in docs if i in problems]
        # Everything RabbitMQ kept is delivered; wait for what the journal says is on its way.
        await wait_delivered(nsw.url, load.accepted, timeout=40)
        await asyncio.sleep(3)
        arrivals = await received(nsw.url)
        views = await journal_views(gateway.url, refused_once)
        delivered_503 = [i for i in refused_once if arrivals[i]]
        truthful = [
            i
            for i in refused_once
            if (views[i].get("state") in DELIVERED_STATES) == (arrivals[i] > 0)
        ]
        summary = Summary.count(
            "confirm-late-503",
            load,
            arrivals,
            refused_by_code=refused_by_code(answers),
            extra={
                "answered_503": len(refused_once),
                "answered_503_delivered_anyway": len(delivered_503),
                "journal_truthful": f"{len(truthful)}/{len(refused_once)}",
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    late = [p for i, p in problems.items() if p.get("code") == "broker-unavailable"]
    assert late, "no publish timed out: the scenario did not happen"
    for problem in late:
        assert problem.get("may_be_delivered") is True, problem
        assert str(problem.get("status", "")).startswith("/v1/messages/"), problem
        assert "GET /v1/messages/" in str(problem.get("detail")), problem
    assert all(a.status in (202, 503) and (a.status == 202 or a.retry_after) for a in answers)
    assert summary.duplicates == 0
    assert summary.lost == 0
    assert len(truthful) == len(refused_once), {
        i: (views[i].get("state"), arrivals[i]) for i in refused_once if i not in truthful
    }


FAIL_QUEUED = """
CREATE FUNCTION asw_test_refuse_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'test: writing QUEUED fails'; END $$;
CREATE TRIGGER asw_test_refuse_queued BEFORE UPDATE ON messages
FOR EACH ROW WHEN (NEW.state = 'QUEUED') EXECUTE FUNCTION asw_test_refuse_queued();
"""


async def test_resends_while_journal_writes_fail_publish_one_copy(
    gateway_factory: GatewayFactory, amqp_url: str, report: Callable[[Summary], None]
) -> None:
    """Resending a message whose QUEUED note fails never puts a second copy on the broker."""
    begun = time.monotonic()
    with private_postgres() as cluster, NswThread("TH") as nsw:
        gateway = gateway_factory(
            parties_config={"TH": http_push_party(nsw.documents_url, timeout_seconds=5)},
            journal_url=cluster.url,
            sweep_seconds=1.0,
            retry_schedule=CRASH_RETRY_SCHEDULE,
        )
        await asyncio.to_thread(gateway.start)  # creates the schema
        await asyncio.to_thread(cluster.sql, FAIL_QUEUED)
        docs = documents(200)
        load, answers = Load(), list[Answer]()
        async with BrokerTap(amqp_url, gateway.prefix) as tap, aiohttp.ClientSession() as session:

            async def three_times(message_id: str) -> None:
                load.sent.append(message_id)
                for _ in range(3):
                    answer, _problem = await _post(session, gateway.url, docs, message_id)
                    answers.append(answer)
                    if answer.status == 202:
                        load.accepted.setdefault(message_id, answer.ended)
                    else:
                        load.refusals[answer.code] += 1
                    await asyncio.sleep(0.2)

            ids = list(docs)
            for start in range(0, len(ids), 20):
                await asyncio.gather(*(three_times(i) for i in ids[start : start + 20]))
            await asyncio.sleep(3)  # three sweeps with the trigger still on
            await asyncio.to_thread(cluster.sql, "DROP TRIGGER asw_test_refuse_queued ON messages")
            await wait_delivered(nsw.url, load.accepted, timeout=40)
            await asyncio.sleep(3)
            copies = await tap.copies()
        arrivals = await received(nsw.url)
        formd_copies = Counter({i: copies[i] for i in docs})
        summary = Summary.count(
            "queued-note-failing-resent-3x",
            load,
            arrivals,
            refused_by_code=refused_by_code(answers),
            extra={
                "posts": len(answers),
                "broker_copies": sum(formd_copies.values()),
                "most_copies_of_one": max(formd_copies.values(), default=0),
                "seconds": round(time.monotonic() - begun, 1),
            },
        )
        report(summary)
    assert all(a.status == 202 for a in answers), refused_by_code(answers)
    assert set(formd_copies) == set(docs) and all(n == 1 for n in formd_copies.values()), (
        formd_copies.most_common(3)
    )
    assert summary.lost == 0
    assert summary.duplicates == 0
