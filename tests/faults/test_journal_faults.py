"""Journal faults with real processes (issue 14, points 2-4 and 9, the journal's side).

Each scenario runs the load in separate processes (``tests.faults.journal_load``) against a
real journal and breaks the journal's storage underneath them:

- SQLite file and folder made unwritable (chmod 0400) for a few seconds, then restored: the
  writers answer 503 (``journal-read-only``) during, and accept again after, without a restart;
  every accepted message is in the journal once.
- SQLite file deleted under the writers: every write after it is refused with
  ``journal-replaced``, none accepted into the unlinked file.
- A PostgreSQL cluster of the test's own switched read-only (``ALTER SYSTEM SET
  default_transaction_read_only``, as after a fail-over) and back: 503 ``journal-read-only``
  during, accepted after, no ``internal-error``.
- Two pollers of one pull inbox: no document is fetched by both.

As root, permissions do not stop anyone, so the writer of the chmod scenario runs as root
without the capabilities that override file permissions (``setpriv``): a service account.
Each scenario prints its summary line (``tests.faults.harness.Summary``): here ``delivered``
counts accepted messages found in the journal afterwards (or documents fetched, for the inbox).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.journal import inbox_of, open_journal
from tests.faults.harness import Summary
from tests.faults.journal_load import record_for
from tests.faults.private_postgres import private_postgres

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DROP_DAC = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]
"""Run as root, but subject to file permissions like any service account."""


@dataclass
class Answers:
    """What a writer process was answered, line by line."""

    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sent(self) -> set[str]:
        """Every message id sent at least once."""
        return {a["id"] for a in self.lines}

    @property
    def accepted(self) -> set[str]:
        """Ids answered 202 (accepted, or a resend found already recorded)."""
        return {a["id"] for a in self.lines if a["status"] == 202}

    def refused(self) -> Counter[str]:
        """Refusals by error code."""
        return Counter(a["code"] for a in self.lines if a["status"] != 202)

    def codes_between(self, start: float, end: float) -> Counter[str]:
        """Answer codes of the attempts started in [start, end) (wall clock)."""
        return Counter(a["code"] for a in self.lines if start <= a["started"] < end)


class Writer:
    """``journal_load write`` in its own process; its answers read as they come."""

    def __init__(self, url: str, seconds: float, *, prefix: list[str] | None = None) -> None:
        """Start writing ``seconds`` long to the journal at ``url``."""
        self.answers = Answers()
        self.errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in wait)
        self.process = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", "tests.faults.journal_load", "write", url,
             str(seconds), "4", "2"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.errors, text=True,
        )  # fmt: skip
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(30):
            self.process.kill()
            raise AssertionError(f"writer did not start: {self._log()}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if not line.startswith("{"):
                continue
            answer = json.loads(line)
            if answer.get("ready"):
                self._ready.set()
            else:
                self.answers.lines.append(answer)

    def _log(self) -> str:
        self.errors.seek(0)
        return self.errors.read()[-3000:]

    def wait(self, timeout: float = 60) -> Answers:
        """Wait for the end of the run; all its answers."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._reader.join(10)
            assert self.process.stdout is not None
            self.process.stdout.close()
            log = self._log()
            self.errors.close()
        assert self.process.returncode == 0, log
        return self.answers


async def _in_journal(url: str, ids: set[str]) -> set[str]:
    """Which of ``ids`` the journal holds, with the bytes they were accepted with."""
    journal = await open_journal(url)
    try:
        found: set[str] = set()
        for message_id in ids:
            payload = await journal.payload(message_id)
            if payload is not None and payload == record_for(message_id)[1]:
                found.add(message_id)
        return found
    finally:
        await journal.close()


def _codes(counts: Counter[str] | dict[str, int]) -> str:
    """``code:n,code:n`` (no spaces: the summary line stays ``key=value`` pairs)."""
    return ",".join(f"{code}:{n}" for code, n in sorted(counts.items())) or "none"


def _summary(scenario: str, answers: Answers, recorded: set[str], **extra: object) -> Summary:
    refused = answers.refused()
    return Summary(
        scenario=scenario,
        sent=len(answers.sent),
        accepted=len(answers.accepted),
        delivered=len(recorded & answers.accepted),
        duplicates=sum(
            1 for a in answers.lines if a["code"] == "accepted" and a["id"] in _twice(answers)
        ),
        lost=len(answers.accepted - recorded),
        extra={"refused": _codes(refused), **extra},
    )


def _twice(answers: Answers) -> set[str]:
    """Ids answered ``accepted`` (a new record) more than once."""
    counts = Counter(a["id"] for a in answers.lines if a["code"] == "accepted")
    return {i for i, n in counts.items() if n > 1}


@pytest.fixture
def journal_dir() -> Iterator[Path]:
    """A folder for a SQLite journal that its permissions can be taken from (not tmp_path,
    whose parents a capability-less root could not enter)."""
    folder = Path(f"/tmp/asw-journal-faults-{uuid.uuid4().hex[:8]}")
    folder.mkdir(mode=0o700)
    yield folder
    folder.chmod(0o700)
    shutil.rmtree(folder, ignore_errors=True)


async def test_sqlite_unwritable_then_restored_heals_without_restart(
    journal_dir: Path, report: Callable[[Summary], None]
) -> None:
    """Journal file and folder chmod 0400 for 3 s under load: 503 during, 202 after, 0 lost."""
    path = journal_dir / "journal.db"
    url = f"sqlite://{path}"
    journal = await open_journal(url)
    await journal.close()
    prefix = DROP_DAC if os.geteuid() == 0 else []
    writer = Writer(url, 8.0, prefix=prefix)
    await asyncio.sleep(2.0)
    broken = time.time()
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        if (journal_dir / name).exists():
            (journal_dir / name).chmod(0o400)
    journal_dir.chmod(0o400)
    await asyncio.sleep(3.0)
    journal_dir.chmod(0o700)
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        if (journal_dir / name).exists():
            (journal_dir / name).chmod(0o600)
    restored = time.time()
    answers = await asyncio.to_thread(writer.wait)
    recorded = await _in_journal(url, answers.accepted)
    during = answers.codes_between(broken + 0.5, restored)
    after = answers.codes_between(restored + 1.0, time.time())
    report(
        _summary(
            "sqlite-unwritable-3s",
            answers,
            recorded,
            during=_codes(during),
            after_heal=_codes(after),
        )
    )
    assert "internal-error" not in answers.refused()
    assert set(answers.refused()) <= {"journal-read-only", "journal-unavailable"}
    assert during and set(during) <= {"journal-read-only", "journal-unavailable"}
    assert after and set(after) <= {"accepted", "resubmitted"}  # healed, no restart
    assert answers.accepted == recorded  # 0 lost
    assert not _twice(answers)  # 0 duplicated


async def test_sqlite_deleted_journal_refuses_with_clear_code(
    journal_dir: Path, report: Callable[[Summary], None]
) -> None:
    """Journal file deleted under load: every later write refused journal-replaced, none 202."""
    path = journal_dir / "journal.db"
    url = f"sqlite://{path}"
    writer = Writer(url, 4.0)
    await asyncio.sleep(1.5)
    deleted = time.time()
    for name in ("journal.db", "journal.db-wal", "journal.db-shm"):
        (journal_dir / name).unlink(missing_ok=True)
    answers = await asyncio.to_thread(writer.wait)
    after = [a for a in answers.lines if a["started"] >= deleted]
    accepted_after = {a["id"] for a in after if a["status"] == 202}
    before = {a["id"] for a in answers.lines if a["status"] == 202} - accepted_after
    refused = Counter(a["code"] for a in after if a["status"] != 202)
    report(
        Summary(
            scenario="sqlite-journal-deleted",
            sent=len(answers.sent),
            accepted=len(answers.accepted),
            delivered=len(before),
            duplicates=0,
            lost=len(accepted_after),
            extra={
                "refused": _codes(answers.refused()),
                "accepted_after_delete": len(accepted_after),
            },
        )
    )
    assert refused["journal-replaced"] > 0
    assert set(refused) == {"journal-replaced"}
    assert not accepted_after  # nothing accepted into a file nobody will read


async def test_postgres_read_only_then_writable_heals(report: Callable[[Summary], None]) -> None:
    """A private cluster read-only for 3 s (as after fail-over): 503 read-only, then 202 again."""
    if shutil.which("runuser") is None and os.geteuid() == 0:
        pytest.fail("runuser (Debian's util-linux) is needed to run a private PostgreSQL as root")
    with private_postgres() as cluster:
        url = f"{cluster.url}?pool_max_size=4"
        journal = await open_journal(url)
        await journal.close()
        writer = Writer(url, 8.0)
        await asyncio.sleep(2.0)
        broken = time.time()
        await asyncio.to_thread(cluster.set_read_only, True)
        await asyncio.sleep(3.0)
        await asyncio.to_thread(cluster.set_read_only, False)
        restored = time.time()
        answers = await asyncio.to_thread(writer.wait)
        recorded = await _in_journal(url, answers.accepted)
    during = answers.codes_between(broken + 0.5, restored)
    after = answers.codes_between(restored + 1.0, time.time())
    report(
        _summary(
            "postgres-read-only-3s",
            answers,
            recorded,
            during=_codes(during),
            after_heal=_codes(after),
        )
    )
    assert "internal-error" not in answers.refused()
    assert during["journal-read-only"] > 0
    assert set(during) <= {"journal-read-only", "accepted", "resubmitted"}
    assert after and set(after) <= {"accepted", "resubmitted"}
    assert answers.accepted == recorded
    assert not _twice(answers)


def _poller(url: str, start_file: Path) -> subprocess.Popen[str]:
    """``journal_load poll`` of TH's inbox in its own process, polling once ``start_file``
    exists."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.faults.journal_load",
            "poll",
            url,
            "TH",
            "1.5",
            str(start_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_two_pollers_never_get_the_same_document(
    journal_dir: Path, report: Callable[[Summary], None]
) -> None:
    """Two poller processes on one pull inbox: each of 100 documents fetched by exactly one."""
    url = f"sqlite://{journal_dir / 'journal.db'}"
    journal = await open_journal(url)
    stored: set[str] = set()
    try:
        inbox = inbox_of(journal)
        for _ in range(100):
            record, payload = record_for(str(uuid.uuid4()))
            await journal.record_accepted(record, payload, at=datetime.now(UTC))
            await inbox.inbox_store(record.message_id, receiver="TH", at=datetime.now(UTC))
            stored.add(record.message_id)
    finally:
        await journal.close()
    # Both start together: under load the second interpreter may take seconds to come up, and
    # the first would fetch everything before it.
    start = journal_dir / "start-polling"
    pollers = [_poller(url, start) for _ in range(2)]
    for poller in pollers:
        assert poller.stdout is not None
        assert '"ready"' in await asyncio.to_thread(poller.stdout.readline)
    start.touch()
    outputs = [await asyncio.to_thread(p.communicate, None, 60) for p in pollers]
    fetched: Counter[str] = Counter()
    per_poller = []
    for process, (out, err) in zip(pollers, outputs, strict=True):
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        assert process.returncode == 0, err
        got = [json.loads(line)["fetched"] for line in out.splitlines() if '"fetched"' in line]
        per_poller.append(len(got))
        fetched.update(got)
    report(
        Summary(
            scenario="pull-inbox-two-pollers",
            sent=len(stored),
            accepted=len(stored),
            delivered=len(set(fetched) & stored),
            duplicates=sum(n - 1 for n in fetched.values() if n > 1),
            lost=len(stored - set(fetched)),
            extra={"per_poller": ",".join(map(str, per_poller))},
        )
    )
    assert set(fetched) == stored
    assert all(n == 1 for n in fetched.values())
    assert all(n > 0 for n in per_poller)  # both really polled
