"""Start-up checks: everything the configuration names is looked at before anything starts.

``preflight(settings)`` returns every problem it finds, each naming the setting and the cause,
so that ``asw-gateway serve`` can print them as one message and exit non-zero within seconds,
instead of starting workers that crash and restart for ever:

- the HTTP port is free (``port_problem``; the process holding it is named where the system
  says), and the TLS files load;
- the broker answers at ``amqp.url`` and accepts those credentials and that virtual host;
- the journal is reachable, at a schema version this gateway knows (``gateway.journal.checks``);
- the queues under ``amqp.prefix`` belong to this journal: the journal's identity is recorded on
  the broker at the first start (``Topology.identity_queue``) and compared at every start;
- the folders the gateway writes are writable and those it reads are readable;
- the key, certificate and trust files load.

``hold_port`` is the supervisor's side of the port: it keeps the port bound (SO_REUSEPORT, not
listening) while its workers listen on it, so that a second gateway's check finds it taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq.exceptions
import structlog

from gateway.core.topology import Topology
from gateway.errors import JournalUnavailable, SettingsError
from gateway.journal.checks import check_journal, describe
from gateway.schema_files import xsd_dir
from gateway.settings import Settings, journal_url

log = structlog.get_logger("gateway.startup")

BROKER_TIMEOUT_SECONDS = 5.0
_CURRENT = re.compile(r"but current is '(?:journal\.)?([^']*)'")


class StartupRefused(SettingsError):
    """Start-up found problems; every one is listed (``problems``)."""

    code = "startup-refused"
    title = "The gateway cannot start"


def startup_message(problems: list[str] | tuple[str, ...]) -> str:
    """The one message a refused start prints."""
    count = len(problems)
    lines = [f"asw-gateway: cannot start, {count} problem{'s' if count != 1 else ''}:"]
    lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)


# --- the HTTP port ----------------------------------------------------------------------------


def _listening_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(inode)
    return inodes


def port_holder(port: int) -> str | None:
    """``name (pid N)`` of a process listening on ``port``, when the system lets us see it."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").strip()
                        name = command.decode(errors="replace")[:120] or proc.name
                        return f"{name} (pid {proc.name})"
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be ours, or None when it is free.

    Binds without SO_REUSEPORT: that fails while any socket holds the port, a second gateway's
    workers (which share it with SO_REUSEPORT) included.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                holder = port_holder(port)
                by = f" by {holder}" if holder else " by another process"
                return (
                    f"http.port: {host}:{port} is already in use{by}; stop it or give this "
                    "gateway another port (ASW_HTTP__PORT)"
                )
            return f"http.host/http.port: cannot listen on {host}:{port} ({exc.strerror})"
    return None


def hold_port(host: str, port: int) -> socket.socket:
    """Keep ``host:port`` bound for this gateway's workers (SO_REUSEPORT, never listening).

    Workers join it with SO_REUSEPORT; another process's plain bind (a second gateway's
    ``port_problem``) fails while this socket lives. Raises ``StartupRefused`` when taken.
    """
    problem = port_problem(host, port)
    if problem is not None:
        raise StartupRefused([problem])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held = socket.socket(family, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        held.bind((host, port))
    except OSError as exc:
        held.close()
        raise StartupRefused([f"http.port: cannot hold {host}:{port} ({exc.strerror})"]) from exc
    return held


# --- the broker and the journal ---------------------------------------------------------------


def _broker_where(url: str) -> str:
    parts = urlsplit(url)
    vhost = parts.path[1:] or "/"
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672} (virtual host {vhost!r})"


def broker_problem(exc: BaseException, url: str) -> str:
    """The message for a broker connection that failed with ``exc``."""
    where = _broker_where(url)
    user = urlsplit(url).username or "guest"
    if isinstance(exc, aiormq.exceptions.ProbableAuthenticationError):
        return f"amqp.url: RabbitMQ at {where} refused user {user!r}: wrong user name or password"
    if isinstance(exc, aiormq.exceptions.InvalidFrameError | aiormq.exceptions.ConnectionClosed):
        return (
            f"amqp.url: RabbitMQ at {where} closed the connection while opening the virtual "
            f"host: it does not exist, or user {user!r} may not use it"
        )
    if isinstance(exc, TimeoutError):
        return f"amqp.url: RabbitMQ at {where} did not answer within {BROKER_TIMEOUT_SECONDS:g} s"
    if isinstance(exc, ConnectionError | OSError):
        return f"amqp.url: nothing answers as RabbitMQ at {where} ({exc})"
    return f"amqp.url: cannot use RabbitMQ at {where}: {type(exc).__name__}: {exc}"


def identity_arguments(topology: Topology, identity: str) -> dict[str, Any]:
    """The identity queue's arguments: the broker compares them at every declaration.

    RabbitMQ refuses to declare an existing queue with a different ``x-dead-letter-routing-key``
    (PRECONDITION_FAILED), so the first journal's identity stays recorded; nothing is ever
    published to the queue.
    """
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": topology.dead_exchange,
        "x-dead-letter-routing-key": f"journal.{identity}",
    }


def broker_urls(settings: Settings) -> list[str]:
    """Every broker node the gateway may use: ``amqp.urls`` where configured, else ``amqp.url``."""
    several = getattr(settings.amqp, "urls", ())  # the cluster setting, where this version has it
    return [str(url) for url in several] or [settings.amqp.url]


async def check_broker(urls: list[str], topology: Topology, identity: str | None) -> list[str]:
    """Connect with the configured credentials; record or compare the journal's identity.

    With several nodes (a cluster), one that answers is enough to start (the gateway moves
    between them by itself), but a node that refuses the credentials is always a problem.
    """
    problems: list[str] = []
    unreachable: list[str] = []
    for url in urls:
        try:
            connection = await aio_pika.connect(url, timeout=BROKER_TIMEOUT_SECONDS)
        except aiormq.exceptions.ProbableAuthenticationError as exc:
            problems.append(broker_problem(exc, url))  # before ConnectionError: a subclass
            continue
        except (ConnectionError, OSError, TimeoutError) as exc:
            unreachable.append(broker_problem(exc, url))
            continue
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line of the message
            problems.append(broker_problem(exc, url))
            continue
        problems += await _check_identity(connection, url, topology, identity)
        identity = None  # recorded or compared once, on the first node that answers
    if len(unreachable) == len(urls):
        return unreachable + problems
    for line in unreachable:  # a cluster node down: start on the others, and say so
        log.warning("broker_node_unreachable", detail=line)
    return problems


async def _check_identity(
    connection: aio_pika.abc.AbstractConnection, url: str, topology: Topology, identity: str | None
) -> list[str]:
    try:
        if identity is None:
            return []
        channel = await connection.channel()
        try:
            await channel.declare_queue(
                topology.identity_queue,
                durable=True,
                arguments=identity_arguments(topology, identity),
            )
        except aiormq.exceptions.ChannelPreconditionFailed as exc:
            found = _CURRENT.search(str(exc))
            recorded = found.group(1) if found else "another journal"
            return [
                f"amqp.prefix: the queues under {topology.prefix!r} at {_broker_where(url)} "
                f"belong to journal {recorded}, not to this gateway's journal {identity}; "
                "use another amqp.prefix (or broker), or this gateway's own journal. If this "
                "journal replaced the old one on purpose, check that those queues hold nothing "
                f"you need, then delete the queue {topology.identity_queue!r}."
            ]
        return []
    finally:
        with contextlib.suppress(Exception):
            await connection.close()


async def _journal_identity(settings: Settings, problems: list[str]) -> str | None:
    url = journal_url(settings.journal)
    try:
        async with asyncio.timeout(3 * settings.journal.op_timeout_seconds + 5):
            identity = await check_journal(url, op_timeout=settings.journal.op_timeout_seconds)
    except TimeoutError:
        problems.append(f"journal.url: {describe(url)} did not answer in time")
        return None
    except JournalUnavailable as exc:
        problems.append(f"journal.url: {exc.detail}")
        return None
    except (ValueError, OSError) as exc:
        problems.append(f"journal.url: {describe(url)}: {exc}")
        return None
    return identity


# --- files and folders ------------------------------------------------------------------------


def _writable_folder(where: str, folder: Path) -> str | None:
    """None when ``folder`` exists or can be made, and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".asw-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{where}: the folder {folder} is not writable ({exc.strerror})"
    return None


def _readable_folder(where: str, folder: Path) -> str | None:
    if not folder.is_dir():
        return f"{where}: the folder {folder} does not exist"
    if not os.access(folder, os.R_OK | os.X_OK):
        return f"{where}: the folder {folder} is not readable"
    return None


FOLDER_OPTIONS = {"directory": _writable_folder, "outbox": _writable_folder}
"""Drop-folder options naming a folder, and what the gateway needs of it."""


def folder_problems(settings: Settings) -> list[str]:
    """Every folder the configuration names that the gateway could not use."""
    problems: list[str] = []
    try:
        xsd = _readable_folder("documents.xsd_dir", xsd_dir(settings.documents.xsd_dir))
    except SettingsError as exc:
        problems.extend(exc.problems)
    else:
        if xsd:
            problems.append(xsd)
    for country, party in sorted(settings.parties.items()):
        if party.adapter != "drop-folder":
            continue
        for option, check in FOLDER_OPTIONS.items():
            value = party.options.get(option)
            if value:
                found = check(f"parties.{country}.options.{option}", Path(value))
                if found:
                    problems.append(found)
    return problems


def _collect(problems: list[str], check: Callable[[], object]) -> None:
    try:
        check()
    except SettingsError as exc:
        problems.extend(exc.problems)


def file_problems(settings: Settings) -> list[str]:
    """Keys, certificates, trust anchors, TLS files and adapter options: do they load?"""
    # Imported here: gateway.app is the wiring, and it imports this module's callers.
    from gateway.app import adapter_options, load_keys, load_signers  # noqa: PLC0415
    from gateway.auth import check_auth_exposure, server_ssl_context  # noqa: PLC0415
    from gateway.trust_loader import open_trust  # noqa: PLC0415

    problems: list[str] = []
    _collect(problems, lambda: check_auth_exposure(settings.http))
    _collect(problems, lambda: load_signers(settings))
    if settings.pki.receipts:
        local = [c for c, p in sorted(settings.parties.items()) if p.adapter != "remote-gateway"]
        _collect(problems, lambda: load_keys(settings, "gateway", local))
    _collect(problems, lambda: open_trust(settings, required=settings.pki.require_signature))
    _collect(
        problems,
        lambda: server_ssl_context(settings.http, trust_dir=Path(settings.pki.trust_dir)),
    )
    _collect(problems, lambda: adapter_options(settings))
    return problems


# --- all of it --------------------------------------------------------------------------------


async def preflight(settings: Settings, *, check_port: bool = True) -> list[str]:
    """Every problem that would stop this gateway from working, each in one line."""
    problems: list[str] = []
    if check_port:
        taken = port_problem(settings.http.host, settings.http.port)
        if taken:
            problems.append(taken)
    problems += file_problems(settings)
    problems += await asyncio.to_thread(folder_problems, settings)
    identity = await _journal_identity(settings, problems)
    problems += await check_broker(broker_urls(settings), Topology(settings.amqp.prefix), identity)
    return problems
