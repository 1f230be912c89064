"""HTTP push adapter: POST each document to the national single window's endpoint.

The document goes out as ``application/xml`` with its message id, sender and document type in
``X-ASW-Message-ID``, ``X-ASW-Sender`` and ``X-ASW-Document-Type`` (the message id also as
``Idempotency-Key``). The NSW's answer decides:

    2xx                                   delivered (whatever the body says, even garbage)
    3xx, 4xx except 408 and 429           PermanentDeliveryFailure, detail = the NSW's answer
    5xx, 408, 429, other statuses         PeerUnavailable (retried later)
    no answer within ``timeout_seconds``  PeerTimeout (retried later)
    connection or TLS failure             PeerUnavailable (retried later)

A circuit breaker (``gateway.core.breaker``) guards the receiver: after ``breaker_failures``
consecutive retryable failures it opens, and for ``breaker_reset_seconds`` every delivery fails
at once with ``PeerUnavailable`` without contacting the NSW, so one NSW that is down does not
hold delivery workers in timeouts. Then one trial delivery is let through; its outcome closes
the breaker or opens it again.

A document handed over twice (after a crash, or a timeout where the NSW did receive it) is
POSTed twice: HTTP gives no way to know whether a timed-out request landed. The NSW recognises
the repeat by ``X-ASW-Message-ID`` / ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp
import structlog

from gateway.core.breaker import Admission, BreakerPhase, BreakerPolicy, BreakerState
from gateway.core.handover import RETRANSMISSION_REQUEST_HEADER, Handover
from gateway.errors import (
    GatewayError,
    PeerTimeout,
    PeerUnavailable,
    PermanentDeliveryFailure,
    SettingsError,
)

log = structlog.get_logger("adapters.http_push")

ANSWER_EXCERPT_CHARS = 500
_ANSWER_READ_BYTES = 16 * 1024
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})
_OPTIONS = frozenset(
    {
        "url",
        "timeout_seconds",
        "client_cert",
        "client_key",
        "ca_file",
        "breaker_failures",
        "breaker_reset_seconds",
        "status_url",
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpPushOptions:
    """The checked ``options`` table of a party using the ``http-push`` adapter."""

    url: str
    timeout_seconds: float = 10.0
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_file: Path | None = None
    breaker_failures: int = 5
    breaker_reset_seconds: float = 30.0
    status_url: str | None = None  # e.g. https://nsw.example/documents/{message_id}

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> HttpPushOptions:
        """Check every option; raise one ``SettingsError`` listing every problem."""
        problems = [f"{key}: unknown option" for key in sorted(set(options) - _OPTIONS)]
        url = options.get("url", "")
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            problems.append(f"url: expected an http:// or https:// URL, got {url!r}")
        timeout = _positive(options, "timeout_seconds", 10.0, problems)
        failures = _positive(options, "breaker_failures", 5, problems, whole=True)
        reset = _positive(options, "breaker_reset_seconds", 30.0, problems)
        files = {
            key: Path(options[key])
            for key in ("client_cert", "client_key", "ca_file")
            if key in options
        }
        status_url = options.get("status_url")
        if status_url is not None and (
            "{message_id}" not in status_url or urlsplit(status_url).scheme not in {"http", "https"}
        ):
            problems.append(
                f"status_url: expected an http(s) URL containing {{message_id}}, got {status_url!r}"
            )
        if "client_key" in files and "client_cert" not in files:
            problems.append("client_key: given without client_cert")
        if files and parts.scheme == "http":
            problems.append("client_cert, client_key and ca_file need an https:// url")
        problems.extend(
            f"{key}: {path} is not a readable file"
            for key, path in files.items()
            if not path.is_file()
        )
        if problems:
            raise SettingsError([f"http-push {p}" for p in problems])
        return cls(
            url=url,
            timeout_seconds=timeout,
            client_cert=files.get("client_cert"),
            client_key=files.get("client_key"),
            ca_file=files.get("ca_file"),
            breaker_failures=int(failures),
            breaker_reset_seconds=reset,
            status_url=status_url,
        )

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for an https URL (CA and client certificate as configured)."""
        if urlsplit(self.url).scheme != "https":
            return None
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.client_cert is not None:
            context.load_cert_chain(
                self.client_cert, self.client_key if self.client_key is not None else None
            )
        return context


def _positive(
    options: Mapping[str, str],
    key: str,
    default: float,
    problems: list[str],
    *,
    whole: bool = False,
) -> float:
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        problems.append(f"{key}: expected a number, got {raw!r}")
        return default
    if whole and not value.is_integer():
        problems.append(f"{key}: expected a whole number, got {raw!r}")
        return default
    if value <= 0:
        problems.append(f"{key}: must be greater than 0, got {raw!r}")
        return default
    return value


def _display_url(url: str) -> str:
    """The URL without any user:password part, for details and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


class HttpPushAdapter:
    """POSTs documents to one national single window's HTTP endpoint, behind a breaker."""

    confirms_on_pickup = False

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        breaker: BreakerPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        status_url: str | None = None,
    ) -> None:
        self.url = url
        self.status_url = status_url
        self.display_url = _display_url(url)
        self.timeout_seconds = timeout_seconds
        self.breaker = breaker or BreakerPolicy()
        self._ssl_context = ssl_context
        self._clock = clock
        self._state = BreakerState()
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> HttpPushAdapter:
        """Build from the ``options`` table of a party's configuration."""
        return cls.from_checked(HttpPushOptions.parse(options))

    @classmethod
    def from_checked(cls, checked: HttpPushOptions) -> HttpPushAdapter:
        """Build from options checked at start (``HttpPushOptions.parse``)."""
        try:
            context = checked.ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError([f"http-push TLS files could not be loaded: {exc}"]) from exc
        return cls(
            checked.url,
            timeout_seconds=checked.timeout_seconds,
            ssl_context=context,
            breaker=BreakerPolicy(
                failure_threshold=checked.breaker_failures,
                reset_seconds=checked.breaker_reset_seconds,
            ),
            status_url=checked.status_url,
        )

    @property
    def breaker_state(self) -> BreakerState:
        """The breaker's current state (for health reports and tests)."""
        return self._state

    def _client(self) -> aiohttp.ClientSession:
        """The one session of this adapter, made inside the running event loop on first use."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                connector=aiohttp.TCPConnector(
                    ssl=self._ssl_context if self._ssl_context is not None else True
                ),
                raise_for_status=False,
            )
        return self._session

    def _auth_headers(self) -> Mapping[str, str]:
        """Credentials sent with every request (none here; a remote gateway sends its key)."""
        return {}

    async def deliver(self, handover: Handover) -> None:
        """POST the document; return once the NSW answered 2xx, or raise a ``GatewayError``."""
        headers = {**_headers(handover), **self._auth_headers()}
        decision = self.breaker.admit(self._state, self._clock())
        self._state = decision.state
        admission = decision.admission
        if admission is Admission.REFUSE:
            raise PeerUnavailable(self._circuit_open_detail())
        if admission is Admission.TRIAL:
            log.info("breaker_trial", url=self.display_url)
        try:
            await self._post(handover, headers)
        except (PeerUnavailable, PeerTimeout):
            self._record_failure(admission)
            raise
        except GatewayError:
            self._record_success(admission)  # a refusal is an answer: the NSW is up
            raise
        except BaseException:
            self._state = self.breaker.abandoned(self._state, admission)
            raise
        self._record_success(admission)

    def _record_success(self, admission: Admission) -> None:
        before = self._state.phase
        self._state = self.breaker.succeeded(self._state, admission)
        if before is not BreakerPhase.CLOSED and self._state.phase is BreakerPhase.CLOSED:
            log.info("breaker_closed", url=self.display_url)

    def _record_failure(self, admission: Admission) -> None:
        before = self._state.phase
        self._state = self.breaker.failed(self._state, admission, self._clock())
        if before is not BreakerPhase.OPEN and self._state.phase is BreakerPhase.OPEN:
            log.warning(
                "breaker_opened",
                url=self.display_url,
                failures=self._state.failures,
                reset_seconds=self.breaker.reset_seconds,
            )

    def _circuit_open_detail(self) -> str:
        retry_at = self.breaker.retry_at(self._state)
        if retry_at is None:
            when = "after the trial delivery under way"
        else:
            when = f"in {max(0.0, retry_at - self._clock()):.1f} s"
        return (
            f"circuit open: {self.display_url} failed {self._state.failures} times in a row; "
            f"not contacted, next attempt {when}."
        )

    async def _post(self, handover: Handover, headers: Mapping[str, str]) -> None:
        try:
            async with self._client().post(
                self.url, data=handover.payload, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if 200 <= status < 300:
                    return  # delivered: the body is not read, nothing in it can undo that
                prefix = f"{self.display_url} answered HTTP {status}: "
                answer = await _answer_excerpt(response, ANSWER_EXCERPT_CHARS - len(prefix))
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise PeerTimeout(
                f"{self.display_url} did not answer within {self.timeout_seconds:g} s."
            ) from exc
        except aiohttp.ClientSSLError as exc:
            raise PeerUnavailable(f"TLS with {self.display_url} failed: {exc}") from exc
        except aiohttp.ClientError as exc:
            raise PeerUnavailable(
                f"Could not deliver to {self.display_url}: {type(exc).__name__}: {exc}"
            ) from exc
        summary = prefix + answer
        if 300 <= status < 500 and status not in _RETRYABLE_CLIENT_STATUSES:
            raise PermanentDeliveryFailure(summary)
        if retry_after:
            summary += f" (Retry-After: {retry_after[:40]})"
        raise PeerUnavailable(summary)

    async def has_received(self, message_id: str) -> bool | None:
        """Ask the NSW (``status_url``) whether it holds ``message_id``: 200 yes, 404 no.

        Anything else (no status URL, an error, another status) is None: cannot tell, so the
        caller delivers, and the NSW's own ``Idempotency-Key`` check is the last line.
        """
        if self.status_url is None:
            return None
        url = self.status_url.replace("{message_id}", quote(message_id, safe=""))
        try:
            async with self._client().get(
                url,
                headers={"Accept": "application/json", **self._auth_headers()},
                allow_redirects=False,
            ) as response:
                if response.status == 200:
                    return True
                if response.status == 404:
                    return False
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.info("status_query_failed", url=_display_url(url), error=type(exc).__name__)
        return None

    async def healthy(self) -> bool:
        """The breaker is not open: the NSW has not just failed ``breaker_failures`` times."""
        return self._state.phase is not BreakerPhase.OPEN

    async def close(self) -> None:
        """Close the HTTP session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _headers(handover: Handover) -> dict[str, str]:
    """The request headers for ``handover``; refuses values that would split the header."""
    headers = {
        "Content-Type": "application/xml",
        "Accept": "application/json, application/xml;q=0.9, */*;q=0.1",
        "X-ASW-Message-ID": handover.message_id,
        "X-ASW-Sender": handover.sender,
        "X-ASW-Document-Type": handover.document_type,
        "Idempotency-Key": handover.message_id,
    }
    if handover.retransmission_request is not None:
        # OCP Rule 29(3): the same e-Form D again, on request; a new hand-over, not a repeat.
        headers[RETRANSMISSION_REQUEST_HEADER] = handover.retransmission_request
        headers["Idempotency-Key"] = f"{handover.message_id}/{handover.retransmission_request}"
    if any("\r" in value or "\n" in value for value in headers.values()):
        raise PermanentDeliveryFailure(
            "The message id, sender or document type contains a line break and cannot be "
            "sent as an HTTP header."
        )
    return headers


async def _answer_excerpt(response: aiohttp.ClientResponse, limit: int) -> str:
    """The start of the NSW's answer as one line of at most ``limit`` (>= 200) characters."""
    limit = max(limit, 200)
    try:
        body = await response.content.read(_ANSWER_READ_BYTES)
    except (aiohttp.ClientError, asyncio.IncompleteReadError):
        body = b""
    text = " ".join(body.decode("utf-8", errors="replace").split())
    if not text:
        return "(empty answer)"
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text
