"""The issue's reference point, measured in the same run: the gateway's libraries in a tight loop.

Issue 5 states that "the same libraries in a tight loop (validate, verify, sign, publish,
consume, no HTTP, no journal) reach about 340 messages per second in one process and 570 in
two" and asks the gateway for 300 delivered per second. Absolute figures move with the machine
(this 2-core VM is measured at 1.3x to 1.6x slower on some days than on others), so
``bench_e2e`` runs this loop beside the gateway and reports the gateway as a fraction of it:
300 / 570 = 0.53 of the two-process loop is the target, whatever the day's machine.

Per message, each process does with bare library calls: ``etree.fromstring`` of the signed
Form D, ``XMLVerifier().verify`` with its certificate, ``XMLSchema.validate`` of the signed
content, ``XMLSigner().sign`` of a delivery receipt, a persistent publish to a quorum queue
(confirms pipelined 64 at a time), and a consumer acking every message.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from consumers import CountingConsumer  # beside this file
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lxml import etree
from signxml.algorithms import SignatureConstructionMethod, SignatureMethod
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "xsd" / "formd" / "formd-1.xsd"
RECEIPT = ROOT / "samples" / "receipt" / "valid" / "th-sg-formd-sha256.xml"
BATCH = 64


@dataclass(frozen=True, slots=True)
class LoopInput:
    """What one loop process needs (picklable): signed documents and the PEM material."""

    documents: list[bytes]
    signer_cert_pem: bytes
    receipt_key_pem: bytes
    receipt_cert_pem: bytes
    amqp_url: str


def _unsigned_receipt() -> etree._Element:
    root = etree.fromstring(RECEIPT.read_bytes())
    for signature in root.findall("{http://www.w3.org/2000/09/xmldsig#}Signature"):
        root.remove(signature)
    return root


async def _run_one(job: LoopInput) -> tuple[float, float]:
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    signer_cert = x509.load_pem_x509_certificate(job.signer_cert_pem)
    receipt_key = load_pem_private_key(job.receipt_key_pem, password=None)
    assert isinstance(receipt_key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    receipt_cert = x509.load_pem_x509_certificate(job.receipt_cert_pem)
    method = (
        SignatureMethod.RSA_SHA256
        if isinstance(receipt_key, rsa.RSAPrivateKey)
        else SignatureMethod.ECDSA_SHA256
    )
    receipt = _unsigned_receipt()
    config = SignatureConfiguration(require_x509=True, location="./", expect_references=1)
    name = f"bench-tight-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(job.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(
            name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        consumer = await CountingConsumer.start(
            connection, name, expected=len(job.documents), prefetch=256
        )
        started, cpu_started = time.perf_counter(), time.process_time()
        for first in range(0, len(job.documents), BATCH):
            publishes = []
            for data in job.documents[first : first + BATCH]:
                root = etree.fromstring(data)
                signed = XMLVerifier().verify(root, x509_cert=signer_cert, expect_config=config)
                assert not isinstance(signed, list)
                assert signed.signed_xml is not None
                if not schema.validate(signed.signed_xml):
                    raise RuntimeError(f"the sample does not validate: {schema.error_log}")
                XMLSigner(
                    method=SignatureConstructionMethod.enveloped,
                    signature_algorithm=method,
                ).sign(receipt, key=receipt_key, cert=[receipt_cert])
                publishes.append(
                    channel.default_exchange.publish(
                        aio_pika.Message(data, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        name,
                    )
                )
            await asyncio.gather(*publishes)
        await consumer.wait()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        await consumer.stop()
        await queue.delete(if_unused=False, if_empty=False)
    return len(job.documents) / elapsed, cpu


def _process_main(job: LoopInput) -> tuple[float, float]:
    return asyncio.run(_run_one(job))


def tight_loop_rate(jobs: list[LoopInput]) -> tuple[float, float]:
    """Messages per second over all ``jobs``, each run in its own process at the same time.

    Also returns the loop processes' own CPU seconds per message while they were timed.
    """
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(jobs)) as pool:
        results = pool.map(_process_main, jobs)
    messages = sum(len(job.documents) for job in jobs)
    return sum(rate for rate, _ in results), sum(cpu for _, cpu in results) / messages
