"""GET /v1/messages/{id}/document.json: a stored document as JSON, for operators and parties.

The same document ``/v1/messages/{id}/document`` serves as XML, decoded with its own schema
(``gateway.core.rendering``): plain keys, lists where the schema allows repeats, amounts as
exact strings, the signature left out. Who may see it is decided as for the XML (an
authenticated party sees only what it sent or receives), and the answer carries the same
guard headers: a browser neither runs nor sniffs it.
"""

from __future__ import annotations

from aiohttp import web

from gateway.app_keys import SETTINGS, SUBMISSIONS
from gateway.core.parsing import parse
from gateway.errors import NotFound
from gateway.offload import offload
from gateway.web import DOCUMENT_HEADERS, message_id_of, visible_payload


async def get_document_json(request: web.Request) -> web.Response:
    """GET /v1/messages/{id}/document.json: the stored document, decoded by its schema."""
    message_id = message_id_of(request)
    payload = await visible_payload(request, message_id, form="json")
    ingest = request.app[SUBMISSIONS].ingest
    threshold = request.app[SETTINGS].http.offload_bytes
    document = await offload(
        len(payload), threshold, lambda: ingest.validator.render(parse(payload, ingest.limits))
    )
    if document is None:
        raise NotFound(f"This gateway cannot show message {message_id}'s document as JSON.")
    return web.json_response(
        {"message_id": message_id, "document": document}, headers=DOCUMENT_HEADERS
    )
