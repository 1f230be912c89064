"""The shell around ``gateway.core.register_queries``: read the register a query asks, decide
whether the gateway answers it itself, and build the signed answer's bytes.

``Submissions`` asks ``plan`` before journalling a CE lookup or AEO status query and, where the
plan says ``AnswerHere``, submits the response built by ``response`` through the same path as
every other document (journalled, queued, delivered by the asker's adapter, linked to the
query), signed with the asked country's gateway key (the one that signs its receipts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.core.pipeline import Accepted
from gateway.core.register_queries import (
    ANSWERS,
    AeoQuery,
    AnswerHere,
    CeLookup,
    Forward,
    answer_message_id,
    build_response,
    decide_query,
    read_query,
)
from gateway.core.registers import RegisterEntry
from gateway.core.signatures import SigningKey
from gateway.journal import Journal


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryPlan:
    """A register query, what the gateway does with it, and the register it read."""

    query: CeLookup | AeoQuery
    decision: AnswerHere | Forward
    history: Sequence[RegisterEntry]


class RegisterAnswers:
    """Answers register queries from the registers the journal keeps, where it may."""

    def __init__(
        self, journal: Journal, keys: Mapping[str, SigningKey], *, enabled: bool = True
    ) -> None:
        self._journal = journal
        self._keys = keys
        self._enabled = enabled

    async def plan(self, accepted: Accepted) -> QueryPlan | None:
        """For a CE lookup or AEO status query: answer here or forward; None otherwise."""
        if accepted.envelope.document_type not in ANSWERS:
            return None
        query = read_query(accepted.root)
        history = await self._journal.register_history(query.register, query.country)
        decision = decide_query(
            query,
            register_held=bool(history),
            can_sign=query.country in self._keys,
            answer_here=self._enabled,
        )
        return QueryPlan(query=query, decision=decision, history=history)

    def response(
        self, accepted: Accepted, plan: QueryPlan, *, created: datetime
    ) -> tuple[str, bytes, SigningKey]:
        """The answer's message id, unsigned bytes and the key the pipeline signs it with."""
        message_id = answer_message_id(accepted.envelope.message_id)
        root = build_response(
            accepted.envelope, plan.query, plan.history, message_id=message_id, created=created
        )
        data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return message_id, data, self._keys[plan.query.country]
