"""The HTTP contract: an OpenAPI 3.1 document of every route, served at ``/v1/openapi.json``.

The document is written here, beside the routes it describes, and is the contract: a test
(``tests/operations/test_openapi.py``) fails when the aiohttp router has a route the document
does not describe or the other way round, and schemathesis fuzzes a live gateway against it.
``/docs`` renders it in a self-contained page (no CDN: the script is served by the gateway).

Every refusal is ``application/problem+json`` (``Problem``); each operation lists the statuses
it can answer with and the codes behind them (``gateway.errors``).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from gateway import __version__
from gateway.core.envelope import MEMBER_STATES
from gateway.core.states import MessageState
from gateway.errors import codes_by_status
from gateway.operators import ROLE_PERMISSIONS, ROLES, ROUTE_PERMISSIONS

OPENAPI_PATH = "/v1/openapi.json"
DOCS_PATH = "/docs"

Json = dict[str, Any]

UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


OPERATOR_ONLY: Json = {"security": [{"apiKey": []}, {"bearer": []}]}
OPEN: Json = {"security": [{}]}


AUTH_STATUSES = (401, 403)
"""What every route that needs a key can answer: no or an unknown key, or not allowed."""


def _problem(status: int) -> Json:
    """The problem answer of ``status``, its codes read from the error tree (gateway.errors)."""
    codes = codes_by_status()[status]
    return {
        "description": f"Problem: {', '.join(codes)}",
        "content": {
            "application/problem+json": {
                "schema": {"allOf": [_ref("Problem"), {"properties": {"code": {"enum": codes}}}]}
            }
        },
    }


def _json(description: str, schema: Json, headers: Json | None = None) -> Json:
    answer: Json = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = headers
    return answer


def _with_csv(answer: Json) -> Json:
    """``answer`` that may also come as CSV (``format=csv``)."""
    answer["content"]["text/csv"] = {"schema": {"type": "string"}}
    return answer


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _path_id(description: str = "The message id (a UUID).") -> Json:
    return {
        "name": "message_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": UUID_PATTERN},
        "description": description,
    }


def _path(name: str) -> Json:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _answers(ok: Json, *statuses: int) -> Json:
    """``ok`` (status -> answer) and the problem answers, the ones every caller can get too."""
    answers = dict(ok)
    for status in sorted({*statuses, 400, 503}):
        answers[str(status)] = _problem(status)
    return answers


PARTY_CODE = {
    "type": "string",
    "enum": sorted(MEMBER_STATES) + sorted(c.lower() for c in MEMBER_STATES),
}
STATES = sorted(s.value for s in MessageState)
LIMIT = {"type": "integer", "minimum": 1}
REASON = {"type": "string", "maxLength": 500}
XML_BODY = {
    "required": True,
    "content": {
        "application/xml": {"schema": {"type": "string"}},
        "text/xml": {"schema": {"type": "string"}},
    },
}
TIME = {"type": "string", "format": "date-time"}
SEARCH_PARAMETERS = [
    _query("message_id", {"type": "string", "pattern": UUID_PATTERN}, "This message."),
    _query("document_id", {"type": "string", "maxLength": 200}, "This document number."),
    _query("document_type", {"type": "string"}, "This document type (EFD, ACDD, ...)."),
    _query("code", {"type": "string"}, "This last error code."),
    _query("since", TIME, "From this instant."),
    _query("until", TIME, "Before this instant."),
    _query("cursor", {"type": "string"}, "Where the previous page ended (from next)."),
    _query("format", {"type": "string", "enum": ["json", "csv"]}, "csv: a CSV export."),
]
"""The search parameters of /v1/messages (and, partly, of refusals and dead letters)."""

CORRELATION = {
    "X-Correlation-ID": {
        "description": "The request's correlation id (the caller's, or a fresh UUID).",
        "schema": {"type": "string"},
    }
}


def _permission(method: str, path: str) -> str:
    permission = ROUTE_PERMISSIONS[(method.upper(), path)]
    if permission in ("open", "party"):
        return permission
    roles = [role for role in ROLES if permission in ROLE_PERMISSIONS[role]]
    return f"operator key with permission {permission!r} (roles: {', '.join(roles)})"


def _operation(method: str, path: str, summary: str, answers: Json, **more: Any) -> Json:
    kind = _permission(method, path)
    if kind != "open":
        answers = {**answers, **{str(s): _problem(s) for s in AUTH_STATUSES}}
    operation: Json = {
        "operationId": f"{method}{path}".replace("/", "_").replace("{", "").replace("}", ""),
        "summary": summary,
        "description": more.pop("description", summary) + f"\n\nWho may call: {kind}.",
        "responses": answers,
        **more,
    }
    if kind == "open":
        operation.update(OPEN)
    elif kind != "party":
        operation.update(OPERATOR_ONLY)
    return operation


def _schemas() -> Json:
    summary = {
        "type": "object",
        "required": ["message_id", "state", "sender", "receiver", "document_type"],
        "properties": {
            "message_id": {"type": "string"},
            "state": {"type": "string", "enum": STATES},
            "state_at": {"type": "string", "format": "date-time"},
            "sender": {"type": "string"},
            "receiver": {"type": "string"},
            "document_type": {"type": "string"},
            "document_id": {"type": ["string", "null"]},
            "function_code": {"type": "string"},
            "referenced_message_id": {"type": ["string", "null"]},
            "test": {"type": "boolean"},
            "size": {"type": "integer"},
            "digest_sha256": {"type": "string"},
            "received_at": {"type": "string", "format": "date-time"},
            "accepted_at": {"type": "string", "format": "date-time"},
            "attempts": {"type": "integer"},
            "last_error": {"type": ["string", "null"]},
        },
    }
    finding = {
        "type": "object",
        "required": ["severity", "code", "message"],
        "properties": {
            "severity": {"type": "string", "enum": ["error", "warning", "info"]},
            "code": {"type": "string"},
            "message": {"type": "string"},
        },
    }
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details; ``code`` is the stable error code.",
            "required": ["type", "title", "status", "detail", "code", "retryable"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string", "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
                "retryable": {"type": "boolean"},
                "instance": {"type": "string"},
                "findings": {"type": "array", "items": _ref("Finding")},
            },
        },
        "Finding": finding,
        "MessageSummary": summary,
        "MessageView": {
            "allOf": [
                _ref("MessageSummary"),
                {
                    "type": "object",
                    "required": ["timeline", "related"],
                    "properties": {
                        "timeline": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["state", "at"],
                                "properties": {
                                    "state": {"type": "string", "enum": STATES},
                                    "at": {"type": "string", "format": "date-time"},
                                    "error": {"type": ["string", "null"]},
                                    "detail": {"type": ["string", "null"]},
                                    "attempt": {"type": ["integer", "null"]},
                                },
                            },
                        },
                        "related": {"type": "array", "items": {"type": "object"}},
                    },
                },
            ]
        },
        "Submitted": {
            "type": "object",
            "required": ["message_id", "status", "resubmitted", "sender", "receiver"],
            "properties": {
                "message_id": {"type": "string"},
                "status": {"type": "string", "enum": STATES},
                "resubmitted": {"type": "boolean"},
                "document_type": {"type": "string"},
                "sender": {"type": "string"},
                "receiver": {"type": "string"},
                "test": {"type": "boolean"},
                "warnings": {"type": "array", "items": _ref("Finding")},
            },
        },
        "Validation": {
            "type": "object",
            "required": ["valid", "findings"],
            "properties": {
                "message_id": {"type": ["string", "null"]},
                "document_type": {"type": "string"},
                "valid": {"type": "boolean"},
                "findings": {"type": "array", "items": _ref("Finding")},
            },
        },
        "AuditEntry": {
            "type": "object",
            "required": ["seq", "at", "actor", "action"],
            "properties": {
                "seq": {"type": "integer"},
                "at": {"type": "string", "format": "date-time"},
                "actor": {"type": "string"},
                "role": {"type": ["string", "null"], "enum": [*ROLES, None]},
                "key_id": {"type": ["string", "null"]},
                "action": {"type": "string"},
                "target": {"type": ["string", "null"]},
                "reason": {"type": ["string", "null"]},
                "detail": {"type": ["string", "null"]},
            },
        },
        "Operator": {
            "type": "object",
            "required": ["key_id", "name", "role", "created_at", "revoked_at"],
            "properties": {
                "key_id": {"type": "string"},
                "name": {"type": "string"},
                "role": {"type": "string", "enum": list(ROLES)},
                "created_at": {"type": "string"},
                "revoked_at": {"type": ["string", "null"]},
            },
        },
        "Partner": {
            "type": "object",
            "required": ["country", "adapter", "healthy", "status", "detail"],
            "properties": {
                "country": {"type": "string"},
                "adapter": {"type": "string"},
                "healthy": {"type": "boolean"},
                "status": {
                    "type": "string",
                    "enum": [
                        "broker-down",
                        "breaker-open",
                        "failing",
                        "stalled",
                        "degraded",
                        "unreachable",
                        "healthy",
                        "idle",
                    ],
                },
                "detail": {"type": "string"},
                "window_minutes": {"type": "integer"},
                "success_rate": {"type": ["number", "null"]},
                "delivered": {"type": "integer"},
                "failed": {"type": "integer"},
                "last_success": {"type": ["string", "null"], "format": "date-time"},
                "last_error": {
                    "type": ["object", "null"],
                    "properties": {
                        "at": {"type": "string", "format": "date-time"},
                        "code": {"type": ["string", "null"]},
                        "detail": {"type": ["string", "null"]},
                    },
                },
                "failing_since": {"type": ["string", "null"], "format": "date-time"},
                "breaker": {
                    "type": ["string", "null"],
                    "enum": ["closed", "open", "half-open", None],
                },
                "queue_depth": {"type": ["integer", "null"]},
                "oldest_waiting_seconds": {"type": ["number", "null"]},
            },
        },
        "Expiry": {
            "type": "object",
            "required": ["country", "kind", "name", "expires", "days_left"],
            "properties": {
                "country": {"type": "string"},
                "kind": {"type": "string", "enum": ["ca", "crl", "signer", "gateway", "tls"]},
                "name": {"type": "string"},
                "expires": {"type": "string", "format": "date-time"},
                "days_left": {"type": "integer"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "broker", "node"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "broker": {"type": "string", "enum": ["connected", "disconnected"]},
                "node": {"type": "string"},
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["ready", "broker", "journal", "trust"],
            "properties": {
                "ready": {"type": "boolean"},
                "broker": {"type": "string", "enum": ["connected", "disconnected"]},
                "journal": {"type": "string"},
                "journal_reason": {"type": "string"},
                "trust": {"type": "string", "enum": ["ok", "reload-failed"]},
                "trust_reason": {"type": "string"},
            },
        },
    }


def _paths() -> Json:
    by_id = [_path_id()]
    reason_header = {
        "name": "X-Audit-Reason",
        "in": "header",
        "required": False,
        "schema": REASON,
        "description": "Why the document is looked at; kept in the audit log.",
    }
    view_params = [*by_id, reason_header, _query("reason", REASON, "Same as X-Audit-Reason.")]
    return {
        "/v1/messages": {
            "post": _operation(
                "POST",
                "/v1/messages",
                "Submit a document",
                _answers(
                    {
                        "202": _json(
                            "Accepted: journalled and queued for delivery.",
                            _ref("Submitted"),
                            {"Location": {"schema": {"type": "string"}}, **CORRELATION},
                        )
                    },
                    408,
                    409,
                    413,
                    415,
                    422,
                ),
                description="Check a signed ASW document, journal it and queue it for its "
                "receiver. A party may only send as itself. A copy marked with "
                "X-ASW-Retransmission-Request by the issuing country's gateway re-delivers the "
                "e-Form D held here under that id (OCP Rule 29(3)), with no new row.",
                requestBody=XML_BODY,
                parameters=[
                    {
                        "name": "X-ASW-Retransmission-Request",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": UUID_PATTERN},
                        "description": "The re-transmission request's message id: this e-Form "
                        "D is sent again on it (only from the issuing country's gateway).",
                    }
                ],
            ),
            "get": _operation(
                "GET",
                "/v1/messages",
                "List messages, newest first",
                _answers(
                    {
                        "200": _with_csv(
                            _json(
                                "The messages.",
                                {
                                    "type": "object",
                                    "required": ["messages"],
                                    "properties": {
                                        "messages": {
                                            "type": "array",
                                            "items": _ref("MessageSummary"),
                                        }
                                    },
                                },
                            )
                        )
                    },
                ),
                parameters=[
                    _query("state", {"type": "string", "enum": STATES}, "Only this state."),
                    _query("sender", PARTY_CODE, "Only from this member state."),
                    _query("receiver", PARTY_CODE, "Only to this member state."),
                    _query("test", {"type": "boolean"}, "Only test (true) or live (false)."),
                    _query("limit", LIMIT, "At most this many."),
                    _query(
                        "before",
                        {"type": "string", "format": "date-time"},
                        "Received before this instant (older paging).",
                    ),
                    *SEARCH_PARAMETERS,
                ],
            ),
        },
        "/v1/messages/{message_id}": {
            "get": _operation(
                "GET",
                "/v1/messages/{message_id}",
                "A message with its timeline and related messages",
                _answers({"200": _json("The message.", _ref("MessageView"))}, 404),
                parameters=by_id,
            )
        },
        "/v1/messages/{message_id}/document": {
            "get": _operation(
                "GET",
                "/v1/messages/{message_id}/document",
                "The stored document as accepted (a download; the view is audited)",
                _answers(
                    {
                        "200": {
                            "description": "The document bytes.",
                            "content": {"application/xml": {"schema": {"type": "string"}}},
                        }
                    },
                    404,
                ),
                parameters=view_params,
            )
        },
        "/v1/messages/{message_id}/document.json": {
            "get": _operation(
                "GET",
                "/v1/messages/{message_id}/document.json",
                "The stored document decoded by its schema (the view is audited)",
                _answers(
                    {
                        "200": _json(
                            "The document as JSON.",
                            {
                                "type": "object",
                                "required": ["message_id", "document"],
                                "properties": {
                                    "message_id": {"type": "string"},
                                    "document": {"type": "object"},
                                },
                            },
                        )
                    },
                    404,
                ),
                parameters=view_params,
            )
        },
        "/v1/validate": {
            "post": _operation(
                "POST",
                "/v1/validate",
                "Check a document without sending it",
                _answers(
                    {"200": _json("The findings.", _ref("Validation"))},
                    408,
                    413,
                    415,
                    422,
                ),
                requestBody=XML_BODY,
            )
        },
        "/v1/stats": {
            "get": _operation(
                "GET",
                "/v1/stats",
                "Messages by state and by receiver",
                _answers(
                    {
                        "200": _json(
                            "The counts.",
                            {
                                "type": "object",
                                "required": ["by_state", "by_receiver", "test_excluded"],
                                "properties": {
                                    "by_state": {
                                        "type": "object",
                                        "additionalProperties": {"type": "integer"},
                                    },
                                    "by_receiver": {"type": "object"},
                                    "test_excluded": {"type": "boolean"},
                                },
                            },
                        )
                    },
                ),
                parameters=[_query("test", {"type": "boolean"}, "Count test messages too.")],
            )
        },
        "/v1/dead-letters": {
            "get": _operation(
                "GET",
                "/v1/dead-letters",
                "Dead letters with their reason, newest first",
                _answers(
                    {
                        "200": _with_csv(
                            _json(
                                "The dead letters.",
                                {
                                    "type": "object",
                                    "required": ["dead_letters"],
                                    "properties": {
                                        "dead_letters": {
                                            "type": "array",
                                            "items": _ref("MessageSummary"),
                                        }
                                    },
                                },
                            )
                        )
                    },
                ),
                parameters=[
                    _query("limit", LIMIT, "At most this many."),
                    _query("receiver", PARTY_CODE, "Only to this member state."),
                    _query("sender", PARTY_CODE, "Only from this member state."),
                    _query("reason", {"type": "string"}, "Only this reason code."),
                    _query("since", TIME, "Died from this instant."),
                    _query("until", TIME, "Died before this instant."),
                    _query("cursor", {"type": "string"}, "Where the previous page ended."),
                    _query("format", {"type": "string", "enum": ["json", "csv"]}, "csv: export."),
                ],
            )
        },
        "/v1/dead-letters/{message_id}/replay": {
            "post": _operation(
                "POST",
                "/v1/dead-letters/{message_id}/replay",
                "Send a dead letter again (audited)",
                _answers(
                    {
                        "202": _json(
                            "Queued again.",
                            {
                                "type": "object",
                                "required": ["message_id", "state", "replays", "operator"],
                                "properties": {
                                    "message_id": {"type": "string"},
                                    "state": {"type": "string", "enum": STATES},
                                    "replays": {"type": "integer"},
                                    "parked_copy_removed": {"type": "boolean"},
                                    "operator": {"type": "string"},
                                },
                            },
                        )
                    },
                    404,
                    409,
                    422,
                ),
                description="The operator is the named key's; ``operator`` in the body only "
                "counts when the gateway runs without authentication (development).",
                parameters=by_id,
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["reason"],
                                "properties": {
                                    "reason": {"type": "string", "minLength": 1},
                                    "operator": {"type": "string"},
                                },
                            }
                        }
                    },
                },
            )
        },
        "/v1/refusals": {
            "get": _operation(
                "GET",
                "/v1/refusals",
                "Refused submissions (journalled), newest first",
                _answers(
                    {
                        "200": {
                            "description": "The refusals (JSON, or CSV with format=csv).",
                            "content": {
                                "application/json": {"schema": {"type": "object"}},
                                "text/csv": {"schema": {"type": "string"}},
                            },
                        }
                    },
                ),
                parameters=[
                    _query("sender", PARTY_CODE, "Only from this member state."),
                    _query("receiver", PARTY_CODE, "Only to this member state."),
                    _query(
                        "state", {"type": "string", "enum": ["REJECTED", "DUPLICATE"]}, "State."
                    ),
                    _query("channel", {"type": "string"}, "http, folder, pull, federation."),
                    _query("limit", LIMIT, "At most this many."),
                    *SEARCH_PARAMETERS,
                ],
            )
        },
        "/v1/refusals/{refusal_id}": {
            "get": _operation(
                "GET",
                "/v1/refusals/{refusal_id}",
                "One refusal with its findings",
                _answers({"200": _json("The refusal.", {"type": "object"})}, 404),
                parameters=[_path("refusal_id")],
            )
        },
        "/v1/refusals/{refusal_id}/document": {
            "get": _operation(
                "GET",
                "/v1/refusals/{refusal_id}/document",
                "The refused document as received (when kept)",
                _answers(
                    {
                        "200": {
                            "description": "The bytes.",
                            "content": {"application/xml": {"schema": {"type": "string"}}},
                        }
                    },
                    404,
                ),
                parameters=[_path("refusal_id")],
            )
        },
        "/v1/dead-letters/replay": {
            "post": _operation(
                "POST",
                "/v1/dead-letters/replay",
                "Replay many dead letters, or preview how many and where (dry run)",
                _answers(
                    {"200": _json("The preview or the results.", {"type": "object"})},
                    404,
                    409,
                    422,
                ),
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
            )
        },
        "/v1/dead-letters/{message_id}/discard": {
            "post": _operation(
                "POST",
                "/v1/dead-letters/{message_id}/discard",
                "Give up on a dead letter (kept as DISCARDED; audited)",
                _answers({"200": _json("Discarded.", {"type": "object"})}, 404, 409, 422),
                parameters=[_path_id()],
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["reason"],
                                "properties": {"reason": {"type": "string"}},
                            }
                        }
                    },
                },
            )
        },
        "/v1/registers/aeo/{country}": {
            "get": _operation(
                "GET",
                "/v1/registers/aeo/{country}",
                "A member state's authorised economic operators",
                _answers({"200": _json("The register.", {"type": "object"})}, 404),
                parameters=[
                    _path("country"),
                    _query("on", {"type": "string", "format": "date"}, "As of this day."),
                ],
            )
        },
        "/v1/registers/aeo/{country}/{aeo_id}": {
            "get": _operation(
                "GET",
                "/v1/registers/aeo/{country}/{aeo_id}",
                "An authorised economic operator of a member state",
                _answers({"200": _json("The record.", {"type": "object"})}, 404),
                parameters=[_path("country"), _path("aeo_id")],
            )
        },
        "/v1/registers/certified-exporters/{country}": {
            "get": _operation(
                "GET",
                "/v1/registers/certified-exporters/{country}",
                "A member state's certified exporters",
                _answers({"200": _json("The register.", {"type": "object"})}, 404),
                parameters=[
                    _path("country"),
                    _query("on", {"type": "string", "format": "date"}, "As of this day."),
                ],
            )
        },
        "/v1/registers/certified-exporters/{country}/{authorisation_id}": {
            "get": _operation(
                "GET",
                "/v1/registers/certified-exporters/{country}/{authorisation_id}",
                "One certified exporter",
                _answers({"200": _json("The record.", {"type": "object"})}, 404),
                parameters=[
                    _path("country"),
                    _path("authorisation_id"),
                    _query("on", {"type": "string", "format": "date"}, "As of this day."),
                ],
            )
        },
        "/v1/certificates": {
            "get": _operation(
                "GET",
                "/v1/certificates",
                "CA certificates and CRLs running out soon",
                _answers(
                    {
                        "200": _json(
                            "Trust material expiring within the window, and the gateway's own "
                            "signing, receipt and TLS certificates (always listed).",
                            {
                                "type": "object",
                                "required": ["now", "within_days", "countries", "expiring", "own"],
                                "properties": {
                                    "now": {"type": "string", "format": "date-time"},
                                    "within_days": {"type": "integer"},
                                    "countries": {"type": "array", "items": {"type": "string"}},
                                    "expiring": {"type": "array", "items": _ref("Expiry")},
                                    "own": {"type": "array", "items": _ref("Expiry")},
                                },
                            },
                        )
                    },
                ),
                parameters=[
                    _query(
                        "within_days",
                        {"type": "integer", "minimum": 0, "maximum": 36500},
                        "Look this many days ahead (default 30).",
                    )
                ],
            )
        },
        "/v1/partners": {
            "get": _operation(
                "GET",
                "/v1/partners",
                "Each receiving partner's health, judged from delivery outcomes",
                _answers(
                    {
                        "200": _json(
                            "The partners; ``healthy`` means deliveries are succeeding.",
                            {
                                "type": "object",
                                "required": ["as_of", "partners"],
                                "properties": {
                                    "as_of": {"type": "string", "format": "date-time"},
                                    "partners": {"type": "array", "items": _ref("Partner")},
                                },
                            },
                        )
                    },
                ),
                parameters=[
                    _query(
                        "window_minutes",
                        {"type": "integer", "minimum": 1, "maximum": 10080},
                        "The window of delivery outcomes (default 60).",
                    )
                ],
            )
        },
        "/v1/deadlines": {
            "get": _operation(
                "GET",
                "/v1/deadlines",
                "OCP time limits of every message that carries one, however old, oldest first; "
                "a page at a time (next)",
                _answers(
                    {"200": _json("The time limits and the next page.", {"type": "object"})},
                    400,
                ),
                parameters=[
                    _query(
                        "status",
                        {
                            "type": "string",
                            "enum": ["closed", "due", "late", "met", "open", "overdue", "used"],
                        },
                        "Only messages with a limit in this status.",
                    ),
                    _query(
                        "type",
                        {"type": "string", "enum": ["EFD", "OD", "RCQ", "VVQ"]},
                        "Only messages of this document type.",
                    ),
                    _query(
                        "country",
                        {"type": "string", "enum": sorted(MEMBER_STATES)},
                        "Only messages this country sent or receives.",
                    ),
                    _query("limit", {**LIMIT, "maximum": 1000}, "Messages per page (200)."),
                    _query("cursor", {"type": "string"}, "Where the previous page ended (next)."),
                ],
            )
        },
        "/v1/queues": {
            "get": _operation(
                "GET",
                "/v1/queues",
                "Messages waiting per queue",
                _answers(
                    {
                        "200": _json(
                            "Depth per queue.",
                            {
                                "type": "object",
                                "required": ["queues"],
                                "properties": {"queues": {"type": "object"}},
                            },
                        )
                    },
                ),
            )
        },
        "/v1/audit": {
            "get": _operation(
                "GET",
                "/v1/audit",
                "The audit log, newest first",
                _answers(
                    {
                        "200": _json(
                            "Audit entries; ``next`` pages to older ones.",
                            {
                                "type": "object",
                                "required": ["entries"],
                                "properties": {
                                    "entries": {"type": "array", "items": _ref("AuditEntry")},
                                    "next": {"type": "string"},
                                },
                            },
                        )
                    },
                ),
                parameters=[
                    _query("actor", {"type": "string"}, "Only this operator (or party CC)."),
                    _query("action", {"type": "string"}, "Only this action, e.g. replay."),
                    _query("target", {"type": "string"}, "Only about this message or key id."),
                    _query("before", {"type": "integer", "minimum": 1}, "Older than this seq."),
                    _query("limit", LIMIT, "At most this many (larger means 1000)."),
                ],
            )
        },
        "/v1/operators": {
            "get": _operation(
                "GET",
                "/v1/operators",
                "The named operator keys (never the keys or their digests)",
                _answers(
                    {
                        "200": _json(
                            "The operators.",
                            {
                                "type": "object",
                                "required": ["configured", "operators"],
                                "properties": {
                                    "configured": {"type": "boolean"},
                                    "operators": {"type": "array", "items": _ref("Operator")},
                                },
                            },
                        )
                    },
                ),
            )
        },
        "/v1/inbox": {
            "get": _operation(
                "GET",
                "/v1/inbox",
                "The calling party's pull inbox: documents waiting, oldest first",
                _answers({"200": _json("The waiting documents.", {"type": "object"})}),
                parameters=[
                    _query("limit", LIMIT, "At most this many."),
                    _query("party", PARTY_CODE, "Whose inbox (only without authentication)."),
                ],
            )
        },
        "/v1/inbox/{message_id}": {
            "get": _operation(
                "GET",
                "/v1/inbox/{message_id}",
                "Fetch a waiting document (starts a lease)",
                _answers(
                    {
                        "200": {
                            "description": "The document as accepted.",
                            "content": {"application/xml": {"schema": {"type": "string"}}},
                        }
                    },
                    404,
                ),
                parameters=[*by_id, _query("party", PARTY_CODE, "Whose inbox (no auth only).")],
            )
        },
        "/v1/inbox/{message_id}/ack": {
            "post": _operation(
                "POST",
                "/v1/inbox/{message_id}/ack",
                "Acknowledge a fetched document: it counts as delivered",
                _answers({"200": _json("Acknowledged.", {"type": "object"})}, 404),
                parameters=[*by_id, _query("party", PARTY_CODE, "Whose inbox (no auth only).")],
            )
        },
        "/metrics": {
            "get": _operation(
                "GET",
                "/metrics",
                "Prometheus metrics (text exposition)",
                _answers(
                    {
                        "200": {
                            "description": "The metrics.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                ),
            )
        },
        "/healthz": {
            "get": _operation(
                "GET",
                "/healthz",
                "Alive; whether the broker is connected",
                {"200": _json("Alive.", _ref("Health"))},
            )
        },
        "/readyz": {
            "get": _operation(
                "GET",
                "/readyz",
                "Ready to accept (broker connected, journal writable)",
                {
                    "200": _json("Ready.", _ref("Readiness")),
                    "503": _json("Not ready; the body says what is missing.", _ref("Readiness")),
                },
            )
        },
        "/console": {
            "get": _operation(
                "GET",
                "/console",
                "The operator console (one page)",
                {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "304": {"description": "Not modified (If-None-Match)."},
                },
            )
        },
        "/console/": {
            "get": _operation(
                "GET",
                "/console/",
                "Redirects to /console",
                {"308": {"description": "Permanent redirect to /console."}},
            )
        },
        "/console/static/{name}": {
            "get": _operation(
                "GET",
                "/console/static/{name}",
                "One of the console's files",
                {
                    "200": {
                        "description": "The file.",
                        "content": {
                            "text/css": {"schema": {"type": "string"}},
                            "text/javascript": {"schema": {"type": "string"}},
                            "image/svg+xml": {"schema": {"type": "string"}},
                        },
                    },
                    "304": {"description": "Not modified (If-None-Match)."},
                    "404": _problem(404),
                },
                parameters=[
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            )
        },
        OPENAPI_PATH: {
            "get": _operation(
                "GET",
                OPENAPI_PATH,
                "This document",
                {"200": _json("OpenAPI 3.1.", {"type": "object"})},
            )
        },
        DOCS_PATH: {
            "get": _operation(
                "GET",
                DOCS_PATH,
                "This document, rendered for reading",
                {
                    "200": {
                        "description": "A self-contained HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
    }


@functools.cache
def openapi_document() -> Json:
    """The OpenAPI 3.1 document of this gateway's HTTP API."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ASEAN Single Window message gateway",
            "version": __version__,
            "description": "Submit, follow and operate ASW documents. Refusals are RFC 9457 "
            "problem details with a stable ``code``. Operator routes need a named operator key "
            "whose role allows them (viewer, operator, admin, auditor).",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}, {"bearer": []}, {"mutualTLS": []}],
        "paths": _paths(),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "mutualTLS": {"type": "mutualTLS"},
            },
        },
    }


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>ASW gateway HTTP API</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:62rem;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.05rem;margin:1.6rem 0 .3rem;font-family:monospace}
.m{display:inline-block;min-width:3.6rem;font-weight:700}.who{color:#555;font-size:.9rem}
table{border-collapse:collapse;margin:.3rem 0}td,th{border:1px solid #ddd;padding:.15rem .45rem;
text-align:left;font-size:.88rem;vertical-align:top}code{font-size:.9em}
</style></head><body>
<h1>ASW gateway HTTP API</h1>
<p>The contract is <a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI 3.1); this page
renders it. Every refusal is <code>application/problem+json</code> with a stable
<code>code</code>.</p>
<div id="ops">Loading…</div>
<script>
"use strict";
const text = (tag, value, cls) => {
  const el = document.createElement(tag); el.textContent = value; if (cls) el.className = cls;
  return el;
};
fetch("/v1/openapi.json").then((r) => r.json()).then((doc) => {
  const root = document.getElementById("ops"); root.textContent = "";
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const h = document.createElement("h2");
      h.append(text("span", method.toUpperCase(), "m"), text("span", path));
      const who = op.description.split("\\n\\n").pop();
      root.append(h, text("div", op.summary), text("div", who, "who"));
      const rows = document.createElement("table");
      for (const p of op.parameters || []) {
        const tr = document.createElement("tr");
        tr.append(text("td", p.in + " " + p.name), text("td", p.description || ""));
        rows.append(tr);
      }
      for (const [status, answer] of Object.entries(op.responses)) {
        const tr = document.createElement("tr");
        tr.append(text("td", status), text("td", answer.description));
        rows.append(tr);
      }
      root.append(rows);
    }
  }
}).catch((e) => { document.getElementById("ops").textContent = "Cannot load: " + e; });
</script></body></html>
"""

DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def openapi_handler(request: web.Request) -> web.Response:
    """GET /v1/openapi.json: the contract."""
    return web.Response(text=json.dumps(openapi_document()), content_type="application/json")


async def docs_handler(request: web.Request) -> web.Response:
    """GET /docs: the contract rendered (self-contained: no CDN, no external script)."""
    return web.Response(text=DOCS_PAGE, content_type="text/html", headers=DOCS_HEADERS)


def add_openapi_routes(app: web.Application) -> None:
    """Mount ``/v1/openapi.json`` and ``/docs``."""
    app.router.add_get(OPENAPI_PATH, openapi_handler)
    app.router.add_get(DOCS_PATH, docs_handler)
