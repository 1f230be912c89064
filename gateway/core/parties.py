"""Parties as data: the Member States and who exchanges which document types, with dates.

The plan is a TOML document: the default ships as ``gateway/data/parties.toml`` (its comments
give the format); setting ``documents.parties_file`` names another (``load_parties``).
``Parties.refusal`` tells why a document may not go from one Member State to another on a day,
or ``None`` when it may: the routing decision (``gateway.core.routing``) raises it as
``receiver-not-enabled`` before anything is queued. The business rules read the members of
the shipped plan (``asean_members`` in ``gateway.core.rules.common``).
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Final

from gateway.core.envelope import DocumentType
from gateway.errors import SettingsError

DOCUMENT_NAMES: Final = {
    DocumentType.FORM_D: "e-Form D",
    DocumentType.ACDD: "ACDD",
    DocumentType.CUSTOMS_RESPONSE: "Customs Response",
    DocumentType.DELIVERY_RECEIPT: "delivery receipt",
    DocumentType.RETRANSMISSION_REQUEST: "re-transmission request",
    DocumentType.REJECTION_NOTICE: "rejection notice",
    DocumentType.CLARIFICATION: "clarification",
    DocumentType.RETRO_CHECK_REQUEST: "retroactive check request",
    DocumentType.RETRO_CHECK_REPLY: "retroactive check reply",
    DocumentType.VISIT_REQUEST: "verification visit request",
    DocumentType.VISIT_CONSENT: "verification visit consent",
    DocumentType.VISIT_RESULT: "verification visit result",
    DocumentType.ORIGIN_DETERMINATION: "origin determination",
    DocumentType.CE_REGISTER_UPDATE: "certified-exporter register update",
    DocumentType.ORIGIN_DECLARATION: "Origin Declaration",
    DocumentType.AEO_STATUS: "AEO status notification",
    DocumentType.CE_LOOKUP_REQUEST: "certified-exporter lookup request",
    DocumentType.CE_LOOKUP_RESPONSE: "certified-exporter lookup response",
    DocumentType.AEO_STATUS_QUERY: "AEO status query",
    DocumentType.AEO_STATUS_RESPONSE: "AEO status response",
}


class PartiesError(ValueError):
    """The parties plan is not well formed (the message says where)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """An ASEAN Member State and the day it joined."""

    country: str
    name: str
    member_since: date


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchange:
    """One document type and its versions, enabled from ``since`` (to ``until``) between
    every two of ``members``, or only between the ``pairs``."""

    document: DocumentType
    versions: frozenset[str]
    since: date
    until: date | None = None
    members: frozenset[str] = frozenset()
    pairs: frozenset[frozenset[str]] = frozenset()

    def covers(self, a: str, b: str, day: date) -> bool:
        """True when ``a`` and ``b`` exchange this type on ``day`` under this entry."""
        if day < self.since or (self.until is not None and day > self.until):
            return False
        return (a in self.members and b in self.members) or frozenset((a, b)) in self.pairs


@dataclass(frozen=True, slots=True, kw_only=True)
class Parties:
    """The member states and the exchanges between them (one version of the plan)."""

    version: str
    members: Mapping[str, Member]
    exchanges: tuple[Exchange, ...]

    def refusal(
        self, sender: str, receiver: str, document: DocumentType, version: str, day: date
    ) -> str | None:
        """Why ``document`` (schema major ``version``) may not go from ``sender`` to
        ``receiver`` on ``day``, for a trade officer; ``None`` when it may."""
        what = DOCUMENT_NAMES[document]
        for country in (receiver, sender):
            if country not in self.members:
                return f"{country} is not an ASEAN Member State in the gateway's parties plan."
        covering = [
            e for e in self.exchanges if e.document is document and e.covers(sender, receiver, day)
        ]
        versions = {v for e in covering for v in e.versions}
        if version in versions:
            return None
        receiver_name = self.members[receiver].name
        if covering:
            return (
                f"{receiver_name} does not take version {version} of the {what} from "
                f"{sender} (it takes version {', '.join(sorted(versions))})."
            )
        who = receiver if receiver_name == receiver else f"{receiver_name} ({receiver})"
        return (
            f"{who} does not take the {what} from {sender} through the "
            f"ASEAN Single Window on {day.isoformat()} (parties plan {self.version})."
        )

    def takes(
        self, sender: str, receiver: str, document: DocumentType, version: str, day: date
    ) -> bool:
        """True when ``receiver`` takes ``document`` from ``sender`` on ``day``."""
        return self.refusal(sender, receiver, document, version, day) is None


def _date(raw: Any, where: str) -> date:
    if not isinstance(raw, date):
        raise PartiesError(f"{where}: a TOML date (YYYY-MM-DD) is required, not {raw!r}")
    return raw


def _codes(raw: Any, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise PartiesError(f"{where}: a list of country codes is required")
    return list(raw)


def _member(raw: Any, n: int) -> Member:
    where = f"member {n}"
    if not isinstance(raw, dict) or not isinstance(raw.get("country"), str):
        raise PartiesError(f"{where}: a table with country, name and member_since is required")
    return Member(
        country=raw["country"],
        name=str(raw.get("name", raw["country"])),
        member_since=_date(raw.get("member_since"), where),
    )


def _exchange(raw: Any, n: int, members: Mapping[str, Member]) -> Exchange:
    where = f"exchange {n}"
    if not isinstance(raw, dict):
        raise PartiesError(f"{where}: a table is required")
    try:
        document = DocumentType(raw.get("document"))
    except ValueError:
        known = ", ".join(t.value for t in DocumentType)
        raise PartiesError(f"{where}: document must be one of {known}") from None
    versions = _codes(raw.get("versions", ["1"]), f"{where} versions")
    listed = _codes(raw.get("members", []), f"{where} members")
    pairs = [_codes(p, f"{where} pairs") for p in raw.get("pairs", [])]
    if any(len(set(p)) != 2 for p in pairs):
        raise PartiesError(f"{where}: each pair names two different countries")
    unknown = sorted({c for c in listed + [c for p in pairs for c in p] if c not in members})
    if unknown:
        raise PartiesError(f"{where}: {', '.join(unknown)} not listed as [[member]]")
    until = raw.get("until")
    return Exchange(
        document=document,
        versions=frozenset(versions),
        since=_date(raw.get("since"), where),
        until=_date(until, where) if until is not None else None,
        members=frozenset(listed),
        pairs=frozenset(frozenset(p) for p in pairs),
    )


def parse_parties(text: str) -> Parties:
    """The plan in TOML ``text``, or ``PartiesError`` saying what is wrong."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PartiesError(f"not valid TOML: {exc}") from None
    members = {
        m.country: m for m in (_member(r, n) for n, r in enumerate(raw.get("member", []), 1))
    }
    exchanges = tuple(_exchange(r, n, members) for n, r in enumerate(raw.get("exchange", []), 1))
    return Parties(version=str(raw.get("version", "")), members=members, exchanges=exchanges)


def load_parties(path: str) -> Parties:
    """The plan in the TOML file at ``path`` (setting ``documents.parties_file``), or the
    shipped one for ``""``; a missing or malformed file is a ``SettingsError``."""
    if not path:
        return default_parties()
    try:
        return parse_parties(Path(path).read_text("utf-8"))
    except (OSError, PartiesError) as exc:
        raise SettingsError([f"documents.parties_file: {path}: {exc}"]) from None


@functools.cache
def default_parties() -> Parties:
    """The plan shipped with the gateway (``gateway/data/parties.toml``)."""
    data = resources.files("gateway").joinpath("data", "parties.toml").read_text("utf-8")
    return parse_parties(data)
