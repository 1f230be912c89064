"""Trust reloads read files off the event loop, and a failed reload is reported, not silent."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import structlog

from gateway import trust_loader
from gateway.broker import Broker
from gateway.core.topology import Topology
from gateway.errors import SettingsError
from gateway.journal import open_journal
from gateway.settings import load_settings
from gateway.trust_loader import ReloadingTrustStore, open_trust
from gateway.web import readiness

if TYPE_CHECKING:
    from tests.pki_fixtures import PkiBundle

pytest_plugins = ["tests.pki_fixtures"]


def _trust_dir(pki: PkiBundle, tmp_path: Path) -> Path:
    for country in ("SG", "MY"):
        target = tmp_path / country
        target.mkdir(parents=True)
        parts = pki.pki.countries[country]
        (target / "ca.pem").write_bytes(parts.ca.cert_pem)
        (target / "crl.pem").write_bytes(parts.crl_pem)
    return tmp_path


async def test_watch_reads_files_off_the_loop_and_reports_a_bad_crl(
    p256_pki: PkiBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken CRL is read in a worker thread, logged with its code, kept out; then recovered."""
    directory = _trust_dir(p256_pki, tmp_path)
    reloading = ReloadingTrustStore(directory, check_every=0.02)
    before = reloading.current()
    threads: list[threading.Thread] = []
    real_load = trust_loader.load_country

    def recording_load(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread())
        return real_load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trust_loader, "load_country", recording_load)
    good_crl = (directory / "SG" / "crl.pem").read_bytes()
    with structlog.testing.capture_logs() as logs:
        watcher = asyncio.create_task(reloading.watch())
        (directory / "SG" / "crl.pem").write_bytes(b"-----BEGIN X509 CRL-----\nbroken\n")
        for _ in range(250):
            if reloading.problems:
                break
            await asyncio.sleep(0.02)
        assert reloading.problems and "SG" in reloading.problems[0]
        assert reloading.current() is before  # the previous trust is kept
        (directory / "SG" / "crl.pem").write_bytes(good_crl + b"\n")
        for _ in range(250):
            if not reloading.problems:
                break
            await asyncio.sleep(0.02)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    assert not reloading.problems
    assert threads and threading.main_thread() not in threads  # never on the loop's thread
    failed = [e for e in logs if e["event"] == "trust_reload_failed"]
    assert failed and failed[0]["error"] == "settings-invalid" and failed[0]["problems"] == 1
    assert any(e["event"] == "trust_reload_recovered" for e in logs)


async def test_readiness_names_a_failed_trust_reload(tmp_path: Path) -> None:
    """/readyz's body says trust reload-failed with the reason; without problems it says ok."""
    settings = load_settings(None, {})
    broker = Broker(settings.amqp, Topology("test-b-wiring"), frozenset())
    journal = await open_journal(f"sqlite://{tmp_path / 'journal.db'}")
    try:
        _, body = await readiness(broker, journal, ("SG/crl.pem: cannot read",))
        assert body["trust"] == "reload-failed"
        assert body["trust_reason"] == "SG/crl.pem: cannot read"
        _, body = await readiness(broker, journal)
        assert body["trust"] == "ok" and "trust_reason" not in body
    finally:
        await journal.close()


def test_one_trust_builder_for_the_gateway_and_tls(p256_pki: PkiBundle, tmp_path: Path) -> None:
    """open_trust builds the reloading store, or None / a SettingsError when the dir is missing."""
    directory = _trust_dir(p256_pki, tmp_path / "trust")
    settings = load_settings(None, {"ASW_PKI__TRUST_DIR": str(directory)})
    store = open_trust(settings, required=True)
    assert store is not None and set(store.current().countries) == {"SG", "MY"}
    missing = load_settings(None, {"ASW_PKI__TRUST_DIR": str(tmp_path / "nowhere")})
    assert open_trust(missing, required=False) is None
    with pytest.raises(SettingsError, match=r"pki\.trust_dir"):
        open_trust(missing, required=True)
