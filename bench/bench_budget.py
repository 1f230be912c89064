"""Issue 5's throughput target as a CPU budget per Form D, beside what each required part costs.

    .venv/bin/python bench/bench_budget.py [--count 3000]

The target is 300 delivered Form D per second where the reference loop made 570 in two
processes, i.e. 0.53x that loop (``bench_e2e.py``). On 2 cores that leaves, per delivered Form D,
``2 cores / (0.53 x loop rate)`` of CPU for everything the machine does: the gateway, RabbitMQ
and the load generator. This bench measures that budget in the same run, then times each part
the scenario cannot do without, on its own, warm and with nothing else running:

- the document checks: ingest of the signed Form D, the receipt (built, validated, signed) and
  the delivery re-check of both (digest and signer against current trust);
- the journal: the ten operations a Form D and its receipt need (SQLite, 64 tasks at once);
- AMQP: two persistent publishes with confirms and two consumes with acks (aio-pika, 64 at
  once), with RabbitMQ's own CPU read from /proc;
- the drop folder: two atomic, fsynced hand-overs (the Form D and the receipt);
- HTTP: one POST of the signed Form D to a bare aiohttp handler, server and client side.

Each part alone is the cheapest it will ever be (caches warm, no other work interleaved); the
gateway also needs the glue between them (asyncio tasks, futures, logs). If the parts alone
already fill the budget, trimming the glue cannot reach the target.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import aiohttp
from aiohttp import web
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers import CountingConsumer  # noqa: E402  (beside this file)
from tight_loop import LoopInput, tight_loop_rate  # noqa: E402  (beside this file)
from timing import CpuMeter, measure, process_cpu_seconds  # noqa: E402  (beside this file)

from adapters.drop_folder import DropFolderAdapter  # noqa: E402
from asw_toolkit.dev_pki import (  # noqa: E402
    DevPki,
    KeyType,
    build_dev_pki,
    write_dev_pki,
)
from asw_toolkit.testkit import with_message_id  # noqa: E402
from gateway.core.envelope import read_envelope  # noqa: E402
from gateway.core.handover import Handover  # noqa: E402
from gateway.core.headers import MessageHeaders  # noqa: E402
from gateway.core.parsing import ParseLimits, parse  # noqa: E402
from gateway.core.pipeline import Ingest  # noqa: E402
from gateway.core.receipts import build_receipt  # noqa: E402
from gateway.core.routing import RoutingTable  # noqa: E402
from gateway.core.signatures import load_signing_key, sign, signer_chain  # noqa: E402
from gateway.core.states import MessageState  # noqa: E402
from gateway.core.topology import Topology  # noqa: E402
from gateway.core.trust import TrustStore  # noqa: E402
from gateway.core.validation import Validator  # noqa: E402
from gateway.journal import open_journal  # noqa: E402
from gateway.journal.contract import Journal, MessageRecord  # noqa: E402
from gateway.trust_loader import load_trust_store  # noqa: E402

AMQP_URL = os.environ.get("ASW_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TARGET_RATIO = 300 / 570
SAMPLE = (ROOT / "samples" / "formd" / "valid" / "sg-th-basic.xml").read_bytes()
CONCURRENCY = 64
HTTP_PORT = 18765


class Documents:
    """The signed Form D, its signed receipt, and what checking them needs."""

    def __init__(self, pki: DevPki, trust: TrustStore) -> None:
        self.now = datetime.now(UTC)
        self.trust = trust
        self.ingest = Ingest(
            limits=ParseLimits(),
            validator=Validator.load(ROOT / "xsd"),
            routes=RoutingTable(topology=Topology("bench"), receivers=frozenset({"SG", "TH"})),
        )
        signer = pki.countries["SG"].signer
        self.sender_key = load_signing_key(signer.key_pem, signer.cert_pem)
        gateway = pki.countries["TH"].gateway
        self.receipt_key = load_signing_key(gateway.key_pem, gateway.cert_pem)
        self.form_d = self.signed_form_d()
        self.receipt = self.ingest.accept(
            self.receipt_bytes(), now=self.now, trust=trust, sign_with=self.receipt_key
        ).payload

    def signed_form_d(self) -> bytes:
        root = sign(parse(with_message_id(SAMPLE, str(uuid.uuid4()))), self.sender_key)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    def receipt_bytes(self) -> bytes:
        receipt = build_receipt(
            received_message_id=str(uuid.uuid4()),
            received_document_type="EFD",
            received_payload=self.form_d,
            receiver="TH",
            original_sender="SG",
            received_at=self.now,
        )
        return etree.tostring(receipt, xml_declaration=True, encoding="UTF-8")

    def accept_form_d(self) -> None:
        self.ingest.accept(self.form_d, now=self.now, trust=self.trust)

    def issue_receipt(self) -> None:
        self.ingest.accept(
            self.receipt_bytes(), now=self.now, trust=self.trust, sign_with=self.receipt_key
        )

    def recheck_both(self) -> None:
        for payload in (self.form_d, self.receipt):
            root = parse(payload, self.ingest.limits)
            hashlib.sha256(payload).hexdigest()
            leaf, intermediates = signer_chain(root)
            sender = read_envelope(root).sender.country
            self.trust.check_signer(leaf, intermediates, sender=sender, now=self.now)


async def cpu_per_unit(
    unit: Callable[[], Awaitable[None]],
    count: int,
    *,
    settle: Callable[[], Awaitable[object]] | None = None,
) -> float:
    """This process's CPU milliseconds (all threads) per ``unit``, run 64 at a time.

    ``settle``, if given, is awaited before the clock stops: for work the units only start.
    """
    left = count

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await unit()

    started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    if settle is not None:
        await settle()
    return (time.process_time() - started) / count * 1000


def _record(payload: bytes, document_type: str, document_id: str | None) -> MessageRecord:
    return MessageRecord(
        message_id=str(uuid.uuid4()),
        sender="SG",
        receiver="TH",
        document_type=document_type,
        document_id=document_id,
        function_code="9",
        referenced_message_id=None,
        test=False,
        size=len(payload),
        digest=hashlib.sha256(payload).hexdigest(),
        received_at=datetime.now(UTC),
    )


async def journal_cost(docs: Documents, count: int) -> float:
    """The journal operations of one Form D and its receipt, as the gateway issues them."""
    with tempfile.TemporaryDirectory(prefix="asw-budget-") as folder:
        journal: Journal = await open_journal(f"sqlite://{Path(folder) / 'journal.db'}")
        lease = timedelta(seconds=60)

        async def form_d_and_receipt() -> None:
            now = datetime.now(UTC)
            form_d = _record(docs.form_d, "EFD", uuid.uuid4().hex)
            receipt = _record(docs.receipt, "RCT", None)
            await journal.record_accepted(form_d, docs.form_d, at=now)
            await journal.transition(form_d.message_id, MessageState.QUEUED, at=now)
            await journal.claim_delivery(
                form_d.message_id, at=now, lease=lease, digest=form_d.digest
            )
            await journal.mark_delivered(form_d.message_id, at=now)
            await journal.record_accepted(receipt, docs.receipt, at=now)
            await journal.transition(receipt.message_id, MessageState.QUEUED, at=now)
            await journal.link(form_d.message_id, receipt.message_id, "receipt", at=now)
            await journal.transition(form_d.message_id, MessageState.RECEIPTED, at=now)
            await journal.claim_delivery(
                receipt.message_id, at=now, lease=lease, digest=receipt.digest
            )
            await journal.mark_delivered(receipt.message_id, at=now)

        try:
            return await cpu_per_unit(form_d_and_receipt, count)
        finally:
            await journal.close()


async def amqp_cost(docs: Documents, count: int) -> tuple[float, float]:
    """Client CPU and RabbitMQ CPU (ms) for two confirmed publishes and two acked consumes."""
    name = f"bench-budget-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        consumer = await CountingConsumer.start(
            connection, name, expected=2 * count, prefetch=CONCURRENCY
        )

        async def publish_both() -> None:
            for body in (docs.form_d, docs.receipt):
                message = aio_pika.Message(
                    body,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=str(uuid.uuid4()),
                    content_type="application/xml",
                    headers=dict(MessageHeaders(sender="SG", receiver="TH").to_amqp()),
                )
                await channel.default_exchange.publish(message, name, mandatory=True)

        meter = CpuMeter(None)
        meter.start()
        client = await cpu_per_unit(publish_both, count, settle=consumer.wait)
        rabbit = meter.stop().rabbitmq / count * 1000
        await consumer.stop()
        await queue.delete(if_unused=False, if_empty=False)
    return client, rabbit


async def folder_cost(docs: Documents, count: int, rounds: int = 3) -> float:
    """Two drop-folder hand-overs, the cheapest of ``rounds`` (see ``_folder_round``)."""
    return min([await _folder_round(docs, count) for _ in range(rounds)])


async def _folder_round(docs: Documents, count: int) -> float:
    """The Form D into TH's inbox, the receipt into SG's, in fresh folders.

    ext4 does not hand out an inode freed in the last few seconds, so just after thousands of
    files were deleted (another benchmark's clean-up) creating files costs twice as much for a
    while; the cheapest round is the part's own cost.
    """
    with tempfile.TemporaryDirectory(prefix="asw-budget-") as folder:
        inbox = DropFolderAdapter(Path(folder) / "TH")
        outbox = DropFolderAdapter(Path(folder) / "SG")

        def handover(receiver: str, document_type: str, payload: bytes) -> Handover:
            sender = "SG" if receiver == "TH" else "TH"
            return Handover(
                message_id=str(uuid.uuid4()),
                sender=sender,
                receiver=receiver,
                document_type=document_type,
                payload=payload,
            )

        async def both() -> None:
            await inbox.deliver(handover("TH", "EFD", docs.form_d))
            await outbox.deliver(handover("SG", "RCT", docs.receipt))

        return await cpu_per_unit(both, count)


def _http_server(port: int) -> None:
    async def submit(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"message_id": str(uuid.uuid4()), "state": "QUEUED"}, status=202)

    app = web.Application()
    app.router.add_post("/v1/messages", submit)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def http_cost(docs: Documents, count: int) -> tuple[float, float]:
    """Server and client CPU (ms) of one POST of the signed Form D, bare aiohttp on both ends."""
    server = multiprocessing.get_context("spawn").Process(target=_http_server, args=(HTTP_PORT,))
    server.start()
    assert server.pid is not None
    try:
        url = f"http://127.0.0.1:{HTTP_PORT}/v1/messages"
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(100):  # wait for the server to listen
                try:
                    async with session.post(url, data=docs.form_d) as response:
                        await response.read()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)

            async def post() -> None:
                async with session.post(
                    url, data=docs.form_d, headers={"Content-Type": "application/xml"}
                ) as response:
                    await response.read()

            server_before = process_cpu_seconds(server.pid)
            client = await cpu_per_unit(post, count)
            server_ms = (process_cpu_seconds(server.pid) - server_before) / count * 1000
    finally:
        server.terminate()
        server.join()
    return server_ms, client


def loop_rate(docs: Documents, pki: DevPki) -> float:
    """The issue's reference loop in two processes (msg/s), as ``bench_e2e`` runs it."""
    documents = [docs.signed_form_d() for _ in range(1500)]
    jobs = [
        LoopInput(
            documents=documents[i::2],
            signer_cert_pem=pki.countries["SG"].signer.cert_pem,
            receipt_key_pem=pki.countries["TH"].gateway.key_pem,
            receipt_cert_pem=pki.countries["TH"].gateway.cert_pem,
            amqp_url=AMQP_URL,
        )
        for i in range(2)
    ]
    rate, _ = tight_loop_rate(jobs)
    return rate


async def run(count: int) -> None:
    pki = build_dev_pki(now=datetime.now(UTC), key_type=KeyType.RSA2048)
    with tempfile.TemporaryDirectory(prefix="asw-budget-pki-") as folder:
        write_dev_pki(pki, Path(folder))
        docs = Documents(pki, load_trust_store(Path(folder)))
    parts: list[tuple[str, float]] = [
        ("checks: ingest of the signed Form D", measure(docs.accept_form_d).median * 1000),
        ("checks: receipt built, validated, signed", measure(docs.issue_receipt).median * 1000),
        ("checks: delivery re-check of both", measure(docs.recheck_both).median * 1000),
        ("journal: 10 operations (SQLite)", await journal_cost(docs, count)),
    ]
    client, rabbit = await amqp_cost(docs, count)
    parts += [("AMQP: 2 publishes + 2 consumes, client", client), ("AMQP: RabbitMQ", rabbit)]
    parts.append(("drop folder: 2 hand-overs", await folder_cost(docs, count)))
    server, http_client = await http_cost(docs, count)
    parts += [("HTTP: one POST, server", server), ("HTTP: one POST, client", http_client)]
    loop = await asyncio.to_thread(loop_rate, docs, pki)
    cores = os.cpu_count() or 1
    budget = cores / (TARGET_RATIO * loop) * 1000
    print(f"machine: {cores} cores; reference loop in 2 processes today: {loop:.0f} msg/s")
    print(
        f"budget: {TARGET_RATIO:.2f} x {loop:.0f} = {TARGET_RATIO * loop:.0f} delivered Form D/s "
        f"leaves {budget:.2f} ms of machine CPU per Form D, at 100 % busy"
    )
    for name, milliseconds in parts:
        print(f"  {name:44s} {milliseconds:6.3f} ms")
    total = sum(milliseconds for _, milliseconds in parts)
    print(
        f"BUDGET parts alone {total:.2f} ms = {total / budget:.0%} of the {budget:.2f} ms budget, "
        "before any glue between them (asyncio, logging) and at 100 % machine use"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(run(args.count))


if __name__ == "__main__":
    main()
