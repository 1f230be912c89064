"""The OpenAPI document is the contract: it matches the router, and a live gateway keeps it."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from asw_toolkit.processes import GatewayProcess
from gateway.app import Gateway
from gateway.auth import key_digest
from gateway.core.envelope import MEMBER_STATES
from gateway.core.topology import Topology
from gateway.errors import codes_by_status
from gateway.openapi import DOCS_HEADERS, DOCS_PAGE, openapi_document
from gateway.operators import add_key
from tests.conftest import CPU_HEAVY, delete_topology, make_settings
from tests.pki_fixtures import PkiBundle

ST = Path(shutil.which("st") or Path(__file__).parents[2] / ".venv" / "bin" / "st")
OPERATOR_SECONDS = 25
PARTY_SECONDS = 20
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)


def documented() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation the document describes."""
    return {
        (method.upper(), path)
        for path, item in openapi_document()["paths"].items()
        for method in item
    }


def test_every_route_is_documented_and_nothing_else(tmp_path: Path, rsa_pki: PkiBundle) -> None:
    """A route in the router but not in the document, or the reverse, fails this test."""
    settings = make_settings(tmp_path, "amqp://guest:guest@127.0.0.1:1/", "t", rsa_pki.directory)
    app = Gateway(settings).application()
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert routed == documented()


def test_the_document_is_openapi_3_1_with_problem_answers() -> None:
    """Every operation has answers; every 4xx/5xx of an API route is problem+json."""
    document = openapi_document()
    assert document["openapi"] == "3.1.0"
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["responses"], (method, path)
            for status, answer in operation["responses"].items():
                if path.startswith("/v1/") and status[0] in "45":
                    assert "application/problem+json" in answer["content"], (method, path, status)


def test_problem_answers_list_the_codes_of_the_error_tree() -> None:
    """Each problem answer's codes are exactly the error tree's codes of that status."""
    document = openapi_document()
    by_status = codes_by_status()
    for item in document["paths"].values():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                problem = answer.get("content", {}).get("application/problem+json")
                if problem is None:  # /readyz and the like answer JSON of their own
                    continue
                schema = problem["schema"]
                assert schema["allOf"][1]["properties"]["code"]["enum"] == by_status[int(status)]
    post = document["paths"]["/v1/messages"]["post"]["responses"]["403"]
    assert "receipt-signer-mismatch" in post["description"]


PARTY_PATHS = "^/v1/(messages|validate|inbox)"
"""Operations a party calls; the others are fuzzed with an admin operator key."""


@dataclass(frozen=True)
class Fuzzed:
    """A live gateway for schemathesis: its URL, an admin operator key and SG's party key."""

    url: str
    admin_key: str
    party_key: str


@pytest.fixture
def fuzzed_gateway(tmp_path: Path, amqp_url: str, rsa_pki: PkiBundle) -> Iterator[Fuzzed]:
    """A gateway process with api-key auth, an admin operator key and a key for SG."""
    keys_file = tmp_path / "operators.json"
    _, key = add_key(keys_file, name="schemathesis", role="admin", now=datetime.now(UTC))
    party_key = f"sg-{uuid.uuid4().hex}"
    sg = (
        f'adapter = "drop-folder"\nsign_on_behalf = true\n'
        f'api_key_sha256 = ["{key_digest(party_key)}"]\n'
        f'options = {{ directory = "{tmp_path / "nsw" / "SG" / "inbox"}" }}\n'
    )
    process = GatewayProcess(tmp_path, amqp_url, rsa_pki.directory, parties_config={"SG": sg})
    process.write_config()
    config = process.config_path.read_text()
    process.config_path.write_text(
        config.replace('auth = "none"', f'auth = "api-key"\noperator_keys_file = "{keys_file}"')
    )
    process.start()
    try:
        yield Fuzzed(url=f"http://127.0.0.1:{process.port}", admin_key=key, party_key=party_key)
    finally:
        process.stop()
        asyncio.run(
            delete_topology(
                amqp_url, Topology(process.prefix), MEMBER_STATES, process.retry_delays_ms
            )
        )


def _schemathesis(url: str, key: str, selection: str, seconds: int, cwd: Path) -> str:
    """Run ``st run`` against ``url`` with ``key``; fail with its report when it finds anything."""
    done = subprocess.run(
        [
            str(ST),
            "run",
            f"{url}/v1/openapi.json",
            "--checks",
            CHECKS,
            "--header",
            f"X-API-Key: {key}",
            selection,
            PARTY_PATHS,
            "--max-examples",
            "12",
            "--max-time",
            str(seconds),
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "16",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"[1-9][0-9]* passed", done.stdout), done.stdout[-3000:]
    return done.stdout


@pytest.mark.rabbitmq
@CPU_HEAVY
def test_schemathesis_finds_no_5xx_and_no_answer_against_the_document(
    fuzzed_gateway: Fuzzed, tmp_path: Path
) -> None:
    """schemathesis fuzzes every operation (bounded) with valid credentials: nothing fails."""
    gateway = fuzzed_gateway
    started = time.monotonic()
    _schemathesis(
        gateway.url, gateway.admin_key, "--exclude-path-regex", OPERATOR_SECONDS, tmp_path
    )
    parties = _schemathesis(
        gateway.url, gateway.party_key, "--include-path-regex", PARTY_SECONDS, tmp_path
    )
    assert "Authentication failed" not in parties, parties[-3000:]
    print(f"schemathesis: {time.monotonic() - started:.1f} s")


def test_docs_page_is_self_contained() -> None:
    """/docs loads nothing from elsewhere: no external script, style or font, only the JSON."""
    page = DOCS_PAGE
    assert "/v1/openapi.json" in page
    assert "http://" not in page and "https://" not in page
    assert "src=" not in page and "<link" not in page
    assert "connect-src 'self'" in DOCS_HEADERS["Content-Security-Policy"]
