"""Read trust stores from disk, and pick up CRLs (and CA certificates) again when they change.

Layout, the same one ``asw-toolkit pki init`` writes:

    DIR/<CC>/ca*.pem    one or more CA certificates of the country (two during a rollover)
    DIR/<CC>/crl*.pem   the CRLs of those CAs (PEM)

Directories whose name is not a two-letter upper-case country code (``bad/`` for instance) are
ignored, and so are keys and leaf certificates lying beside the CA files. ``pki init`` keeps the
CAs' private keys out of this directory (``<DIR>-ca-keys/`` by default): a trust directory only
needs certificates and CRLs.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from gateway.core.trust import CountryTrust, RevocationPolicy, TrustStore
from gateway.errors import SettingsError
from gateway.settings import Settings

log = structlog.get_logger("gateway.trust_loader")

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_Snapshot = tuple[tuple[str, int, int], ...]


def _policy(country: str, policies: Mapping[str, str] | None) -> RevocationPolicy:
    value = (policies or {}).get(country, RevocationPolicy.HARD_FAIL.value)
    try:
        return RevocationPolicy(value)
    except ValueError as exc:
        raise SettingsError(
            [f"revocation policy of {country} must be hard-fail or soft-fail, not {value!r}"]
        ) from exc


def _trust_files(country_dir: Path) -> tuple[list[Path], list[Path]]:
    return sorted(country_dir.glob("ca*.pem")), sorted(country_dir.glob("crl*.pem"))


def _country_dirs(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise SettingsError([f"the trust directory {directory} does not exist"])
    return sorted(p for p in directory.iterdir() if p.is_dir() and _COUNTRY.match(p.name))


def load_country(
    country_dir: Path, *, policy: RevocationPolicy = RevocationPolicy.HARD_FAIL
) -> CountryTrust:
    """One country's trust from ``country_dir`` (named by its ISO code)."""
    anchors, crls = _trust_files(country_dir)
    if not anchors:
        raise SettingsError([f"{country_dir} holds no CA certificate (ca*.pem)"])
    try:
        return CountryTrust.from_pem(
            country_dir.name,
            anchors=[p.read_bytes() for p in anchors],
            crls=[p.read_bytes() for p in crls],
            policy=policy,
        )
    except (OSError, ValueError) as exc:
        raise SettingsError([f"cannot read the trust files in {country_dir}: {exc}"]) from exc


def load_trust_store(directory: Path, *, policies: Mapping[str, str] | None = None) -> TrustStore:
    """Every country under ``directory``; ``policies`` maps a country to hard-fail/soft-fail.

    Raises ``SettingsError`` listing every problem found.
    """
    countries: list[CountryTrust] = []
    problems: list[str] = []
    for country_dir in _country_dirs(directory):
        try:
            countries.append(load_country(country_dir, policy=_policy(country_dir.name, policies)))
        except SettingsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SettingsError(problems)
    if not countries:
        raise SettingsError([f"the trust directory {directory} holds no country (e.g. SG/ca.pem)"])
    return TrustStore(countries)


def _snapshot(country_dir: Path) -> _Snapshot:
    anchors, crls = _trust_files(country_dir)
    stamps = []
    for path in (*anchors, *crls):
        try:
            stat = path.stat()
        except OSError:
            continue
        stamps.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def open_trust(settings: Settings, *, required: bool) -> ReloadingTrustStore | None:
    """The one way to build the gateway's trust store: over ``pki.trust_dir``, reloading.

    None when the directory does not exist, unless ``required`` (signatures are required),
    which makes that a ``SettingsError``.
    """
    trust_dir = Path(settings.pki.trust_dir)
    if not trust_dir.is_dir():
        if required:
            raise SettingsError(
                [
                    f"pki.trust_dir: {trust_dir} does not exist; create a development PKI with "
                    f"`asw-toolkit pki init {trust_dir}` or point ASW_PKI__TRUST_DIR at one"
                ]
            )
        return None
    return ReloadingTrustStore(
        trust_dir,
        policies={country: party.revocation for country, party in settings.parties.items()},
        check_every=settings.pki.trust_check_seconds,
    )


class ReloadingTrustStore:
    """A trust store that re-reads a country's files when their mtime or size changes.

    In the gateway, ``watch()`` runs as a supervised background task: every ``check_every``
    seconds it looks at the files (a few ``stat`` calls) in a worker thread, off the event loop,
    and ``current()`` only returns the store. Without a watcher (command-line tools),
    ``current()`` checks itself, at most every ``check_every`` seconds. Only the countries whose
    files changed are rebuilt, so the others keep their cached trust decisions. A file that
    cannot be read (a CRL being rewritten, say) keeps the previous data for that country and is
    reported until it reads cleanly: in ``problems``, logged as ``trust_reload_failed`` (with
    the error code ``settings-invalid``), named in ``/readyz`` and counted in the
    ``asw_trust_reload_problems`` metric.
    """

    def __init__(
        self,
        directory: Path,
        *,
        policies: Mapping[str, str] | None = None,
        check_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._policies = dict(policies or {})
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._store = load_trust_store(directory, policies=self._policies)
        self._snapshots = {p.name: _snapshot(p) for p in _country_dirs(directory)}
        self._checked = clock()
        self._watched = False
        self.problems: tuple[str, ...] = ()

    def current(self) -> TrustStore:
        """The trust store; without a watcher, reloaded first if the interval passed."""
        if self._watched or self._clock() - self._checked < self._check_every:
            return self._store
        self.refresh()
        return self._store

    def refresh(self) -> tuple[str, ...]:
        """Re-read the countries whose files changed (blocking file reads); the problems."""
        with self._lock:
            self._checked = self._clock()
            before = self.problems
            self._refresh()
            problems = self.problems
        if problems and problems != before:
            log.warning(
                "trust_reload_failed",
                error=SettingsError.code,
                problems=len(problems),
                detail="; ".join(problems)[:500],
                outcome="previous trust kept",
            )
        elif before and not problems:
            log.info("trust_reload_recovered")
        return problems

    async def watch(self) -> None:
        """Reload every ``check_every`` seconds, reading the files off the event loop."""
        self._watched = True
        try:
            while True:
                await asyncio.sleep(self._check_every)
                await asyncio.to_thread(self.refresh)
        finally:
            self._watched = False

    def _refresh(self) -> None:
        problems: list[str] = []
        store = self._store
        for country_dir in _country_dirs(self._directory):
            snapshot = _snapshot(country_dir)
            if self._snapshots.get(country_dir.name) == snapshot:
                continue
            try:
                country = load_country(
                    country_dir, policy=_policy(country_dir.name, self._policies)
                )
            except SettingsError as exc:
                problems.extend(exc.problems)
                continue
            store = store.replace_country(country)
            self._snapshots[country_dir.name] = snapshot
        self._store = store
        self.problems = tuple(problems)
