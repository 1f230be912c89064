"""The console's files as served over HTTP: headers, media types, caching and no way out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest
from aiohttp import web

from gateway.app_keys import SETTINGS
from gateway.console import CONTENT_TYPES, STATIC_DIR, add_console_routes
from gateway.settings import Settings
from gateway.web import errors_middleware


@pytest.fixture
async def console_url() -> AsyncIterator[str]:
    """A bare aiohttp app with only the console routes and the problem+json middleware."""
    app = web.Application(middlewares=[errors_middleware])
    app[SETTINGS] = Settings()
    add_console_routes(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _assert_security_headers(headers: Mapping[str, str]) -> None:
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


async def test_console_page_is_served_with_security_headers(console_url: str) -> None:
    """GET /console answers the HTML page with CSP, nosniff, no-referrer and no framing."""
    async with aiohttp.ClientSession() as session, session.get(console_url + "/console") as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        _assert_security_headers(r.headers)
        assert "<main" in await r.text()


async def test_console_assets_have_media_types_and_revalidate_with_etags(
    console_url: str,
) -> None:
    """Each asset has its media type and a strong ETag that a conditional GET answers with 304."""
    async with aiohttp.ClientSession() as session:
        for name, content_type in CONTENT_TYPES.items():
            if name == "index.html":
                continue
            url = f"{console_url}/console/static/{name}"
            async with session.get(url) as first:
                assert first.status == 200, name
                assert first.headers["Content-Type"] == content_type
                _assert_security_headers(first.headers)
                etag = first.headers["ETag"]
            async with session.get(url, headers={"If-None-Match": etag}) as again:
                assert again.status == 304, name
                assert await again.read() == b""


async def test_anything_else_under_the_console_is_a_problem_json_404(console_url: str) -> None:
    """Unknown names, the page itself and escapes from the folder get 404 problem+json."""
    paths = [
        "/console/static/nope.js",
        "/console/static/index.html",
        "/console/static/..%2Fconsole.py",
        "/console/static/../console.py",
        "/console/static/",
    ]
    async with aiohttp.ClientSession() as session:
        for path in paths:
            async with session.get(console_url + path) as r:
                assert r.status == 404, path
                assert r.content_type == "application/problem+json", path
                assert (await r.json())["code"] == "not-found", path


async def test_console_with_a_trailing_slash_redirects_to_the_page(console_url: str) -> None:
    """GET /console/ is a permanent redirect to /console."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(console_url + "/console/", allow_redirects=False) as r,
    ):
        assert r.status == 308
        assert r.headers["Location"] == "/console"


def test_console_loads_nothing_from_another_origin_and_never_writes_markup() -> None:
    """Every asset reference is same-origin, and the script never uses innerHTML or eval."""
    html = (STATIC_DIR / "index.html").read_text()
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert references
    assert all(ref.startswith(("/console/static/", "#")) for ref in references), references
    script = "\n".join(
        (STATIC_DIR / name).read_text() for name in CONTENT_TYPES if name.endswith(".js")
    )
    assert "oversight.js" in script or "VIEWS.refusals" in script
    css = (STATIC_DIR / "console.css").read_text()
    for text in (html, script, css):
        assert not re.search(r"https?://", text), "no absolute URLs: nothing from other origins"
    for forbidden in ("innerHTML", "outerHTML =", "insertAdjacentHTML", "eval(", "new Function"):
        assert forbidden not in script, forbidden
    assert "style=" not in html and "<style" not in html and "<script>" not in html
