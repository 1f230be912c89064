"""Remote gateway: forward documents to another ASW gateway's ingest API (federation).

In the live ASW each member state runs its own gateway. A party configured with
``adapter = "remote-gateway"`` is reached through *its* gateway: the signed document is POSTed
to ``<url>/v1/messages`` exactly as received, authenticated with an API key the remote gateway
knows for this side's party (``api_key``, better given as ``api_key_file`` or through the
environment) and/or this gateway's TLS client certificate (``client_cert``/``client_key``).
The remote's ``202`` counts as delivery: from there the remote gateway owns the document.

Everything else is the HTTP push adapter (``adapters.http_push``): timeouts, TLS, the circuit
breaker and the classification of answers (``4xx`` permanent, ``5xx``/``408``/``429`` and
timeouts transient). One addition: a ``409`` is checked with ``GET <url>/v1/messages/{id}``
on the remote. If the remote already holds this very message id (a hand-over repeated after
a crash, or a 409 naming this message as the original), it counts as delivered; otherwise
(the business key belongs to another message, or the id was used for another document) the
409 stands as a permanent refusal.

The remote gateway's 202 is proof of delivery; its signed delivery receipt, which comes back
through this gateway's ingest, must be signed by the remote gateway's *own* receipt signer, not
by just any certificate its country's CA vouches for. That signer is pinned per partner:
``receipt_signer_sha256`` (the SHA-256 fingerprints of its certificates, comma-separated, for a
roll-over) and/or ``receipt_signer_subject`` (its subject, RFC 4514, e.g.
``CN=TH ASW Gateway Receipts,O=TH ASW Gateway,C=TH``); one of them is required. A receipt
signed otherwise is refused with ``receipt-signer-mismatch`` (``gateway.core.receipts``).

Options: ``url`` (the remote gateway's base URL), ``api_key`` or ``api_key_file``,
``receipt_signer_sha256`` and/or ``receipt_signer_subject``, ``timeout_seconds``,
``client_cert``, ``client_key``, ``ca_file``, ``breaker_failures``, ``breaker_reset_seconds``
(the last six as for ``http-push``).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import structlog

from adapters.http_push import HttpPushAdapter, HttpPushOptions
from gateway.core.breaker import BreakerPolicy
from gateway.core.handover import Handover
from gateway.core.receipts import ReceiptSignerPin
from gateway.errors import PeerUnavailable, PermanentDeliveryFailure, SettingsError

log = structlog.get_logger("adapters.remote_gateway")

_OWN_OPTIONS = frozenset(
    {"api_key", "api_key_file", "receipt_signer_sha256", "receipt_signer_subject"}
)
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
CONFLICT = 409


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteGatewayOptions:
    """The checked ``options`` of a ``remote-gateway`` party."""

    base_url: str
    api_key: str | None
    push: HttpPushOptions
    receipt_signer: ReceiptSignerPin

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> RemoteGatewayOptions:
        """Check every option; raise one ``SettingsError`` listing every problem."""
        problems: list[str] = []
        base = options.get("url", "").rstrip("/")
        parts = urlsplit(base)
        if parts.path not in ("", "/") or parts.query:
            problems.append(
                f"url: the remote gateway's base URL, without a path, got {options.get('url')!r}"
            )
        api_key = options.get("api_key") or None
        key_file = options.get("api_key_file")
        if api_key and key_file:
            problems.append("api_key and api_key_file: give one of them")
        if key_file:
            try:
                api_key = Path(key_file).read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                problems.append(f"api_key_file: cannot read {key_file}: {exc.strerror}")
        if api_key is not None and any(c in api_key for c in "\r\n"):
            problems.append("api_key: must be one line")
        pin = _receipt_signer(options, problems)
        push_options = {k: v for k, v in options.items() if k not in _OWN_OPTIONS}
        push_options["url"] = base + "/v1/messages"
        try:
            push = HttpPushOptions.parse(push_options)
        except SettingsError as exc:
            problems.extend(p.replace("http-push ", "", 1) for p in exc.problems)
            push = None
        if api_key is None and (push is None or push.client_cert is None):
            problems.append("give api_key, api_key_file or client_cert: the remote must know us")
        if problems or push is None:
            raise SettingsError([f"remote-gateway {p}" for p in problems])
        return cls(base_url=base, api_key=api_key, push=push, receipt_signer=pin)


def _receipt_signer(options: Mapping[str, str], problems: list[str]) -> ReceiptSignerPin:
    """The pinned receipt signer of the remote gateway; its problems go to ``problems``."""
    fingerprints: set[str] = set()
    malformed = False
    for given in re.split(r"[,\s]+", options.get("receipt_signer_sha256", "").strip()):
        if not given:
            continue
        value = given.replace(":", "").lower()
        if _FINGERPRINT.match(value):
            fingerprints.add(value)
        else:
            malformed = True
            problems.append(
                f"receipt_signer_sha256: {given!r} is not a SHA-256 fingerprint (64 hex digits)"
            )
    subject = options.get("receipt_signer_subject", "").strip() or None
    if not fingerprints and subject is None and not malformed:
        problems.append(
            "give receipt_signer_sha256 or receipt_signer_subject: the remote gateway's own "
            "receipt signer, the only signer whose receipts count"
        )
    return ReceiptSignerPin(fingerprints=frozenset(fingerprints), subject=subject)


class RemoteGatewayAdapter(HttpPushAdapter):
    """Forwards documents to another gateway's ``POST /v1/messages``.

    Built on ``HttpPushAdapter``: the breaker, session, TLS and answer classification are its;
    this class adds the caller's credentials to every request and settles ``409`` answers.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_seconds: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        breaker: BreakerPolicy | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        super().__init__(
            base + "/v1/messages",
            timeout_seconds=timeout_seconds,
            ssl_context=ssl_context,
            breaker=breaker,
            status_url=base + "/v1/messages/{message_id}",
        )
        self.base_url = base
        self._credentials = {"X-API-Key": api_key} if api_key else {}

    def _auth_headers(self) -> Mapping[str, str]:
        """This gateway's key, for the remote to know who forwards."""
        return self._credentials

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> RemoteGatewayAdapter:
        """Build from the ``options`` table of a party's configuration."""
        return cls.from_remote_options(RemoteGatewayOptions.parse(options))

    @classmethod
    def from_remote_options(cls, checked: RemoteGatewayOptions) -> RemoteGatewayAdapter:
        """Build from options checked at start (``RemoteGatewayOptions.parse``)."""
        try:
            context = checked.push.ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError([f"remote-gateway TLS files could not be loaded: {exc}"]) from exc
        return cls(
            checked.base_url,
            api_key=checked.api_key,
            timeout_seconds=checked.push.timeout_seconds,
            ssl_context=context,
            breaker=BreakerPolicy(
                failure_threshold=checked.push.breaker_failures,
                reset_seconds=checked.push.breaker_reset_seconds,
            ),
        )

    async def _post(self, handover: Handover, headers: Mapping[str, str]) -> None:
        """POST; a 409 for a message the remote already holds counts as delivered."""
        try:
            await super()._post(handover, headers)
        except PermanentDeliveryFailure as exc:
            if not exc.detail.startswith(f"{self.display_url} answered HTTP {CONFLICT}:"):
                raise
            held = await self.has_received(handover.message_id)
            if held is None:
                raise PeerUnavailable(
                    f"{self.base_url} answered 409 and could not say whether it holds message "
                    f"{handover.message_id}; trying again later."
                ) from exc
            if not held:
                raise
            log.info("remote_already_holds_message", url=self.base_url)
