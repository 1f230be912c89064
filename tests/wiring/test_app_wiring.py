"""The gateway's application opens one resource per aiohttp cleanup context, in order."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gateway.app import Gateway
from tests.conftest import make_settings

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]


def test_resources_open_in_order_through_cleanup_contexts(
    tmp_path: Path, rsa_pki: PkiBundle
) -> None:
    """Pool, journal, adapters, services, broker, metrics, background tasks: in that order."""
    settings = make_settings(
        tmp_path, "amqp://guest:guest@127.0.0.1:1/", "test-b-wiring", rsa_pki.directory
    )
    app = Gateway(settings).application()
    names = [getattr(ctx, "__name__", "") for ctx in app.cleanup_ctx]
    assert names == [
        "request_pool_ctx",
        "_journal_ctx",
        "_adapters_ctx",
        "_services_ctx",
        "_broker_ctx",
        "watch_breakers",
        "_background_ctx",
    ]
