"""The operator console: a small single-page app served by the gateway itself.

Operators watch the queues, read a message's timeline, inspect and replay dead letters, and see
which certificates and CRLs are about to expire. The console is plain HTML, CSS and one
JavaScript module in ``gateway/console_static/``; there is no build step and nothing is loaded
from another origin. It talks only to the gateway's own JSON API (``/v1/...``), so everything it
shows an operator can also be had with ``curl``.

Routes (mounted by ``add_console_routes``):

- ``GET /console``: the page (``index.html``); ``/console/`` redirects there.
- ``GET /console/static/{name}``: the assets, from a fixed list: no path is ever taken from the
  request, so nothing outside the folder can be served.

Every answer carries a strict Content-Security-Policy (same origin only, no inline script or
style, no framing), ``nosniff`` and ``no-referrer``. Assets are read once when the routes are
mounted and served with a strong ETag, so a reload costs one 304.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "console_static"
"""Where the console's files live (shipped inside the ``gateway`` package)."""

CONSOLE_PATH = "/console"
STATIC_PREFIX = "/console/static/"

CONTENT_TYPES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "oversight.js": "text/javascript; charset=utf-8",
    "registers.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""Every file the console serves, with its media type; anything else is a 404."""

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
"""Headers on every console response."""


@dataclass(frozen=True, slots=True)
class Asset:
    """One console file, read into memory once."""

    body: bytes
    content_type: str
    etag: str


def load_assets(directory: Path = STATIC_DIR) -> dict[str, Asset]:
    """Read every console file; a missing one stops start-up with its path."""
    assets: dict[str, Asset] = {}
    for name, content_type in CONTENT_TYPES.items():
        body = (directory / name).read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[name] = Asset(body=body, content_type=content_type, etag=etag)
    return assets


def _respond(request: web.Request, asset: Asset, *, cache: str) -> web.Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": cache}
    if asset.etag in _etags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=asset.body, headers=headers)
    response.headers["Content-Type"] = asset.content_type
    return response


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def add_console_routes(app: web.Application) -> None:
    """Mount the operator console at ``/console`` and its assets at ``/console/static/``."""
    assets = load_assets()

    async def page(request: web.Request) -> web.Response:
        """GET /console: the single page; the views are chosen by the URL fragment."""
        return _respond(request, assets["index.html"], cache="no-cache")

    async def slash(request: web.Request) -> web.Response:
        """GET /console/: the same page, at its one canonical address."""
        raise web.HTTPPermanentRedirect(CONSOLE_PATH, headers=SECURITY_HEADERS)

    async def static(request: web.Request) -> web.Response:
        """GET /console/static/{name}: one of the console's files, never any other path."""
        name = request.match_info["name"]
        asset = assets.get(name)
        if asset is None or name == "index.html":
            raise NotFound(f"The console has no file called {name!r}.")
        return _respond(request, asset, cache="no-cache")

    app.router.add_get(CONSOLE_PATH, page, name="console")
    app.router.add_get(CONSOLE_PATH + "/", slash)
    app.router.add_get(STATIC_PREFIX + "{name}", static)
