"""The lock files pin, with hashes, every dependency pyproject.toml declares (`make lock`)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from tests.conftest import ROOT

RUNTIME_LOCK = ROOT / "requirements" / "runtime.lock"
DEV_LOCK = ROOT / "requirements" / "dev.lock"
# A pin starts a line: `name==version \` or `name==version ; marker \`, then its hashes.
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)
FIX = "run `make lock` and commit requirements/*.lock"


def pins(text: str) -> dict[NormalizedName, str]:
    """The pinned version of each package in a lock file's text, by normalized name."""
    return {canonicalize_name(name): version for name, version in PIN.findall(text)}


def declared(group: str) -> list[Requirement]:
    """pyproject.toml's runtime dependencies (``runtime``) or an optional group (``dev``)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = (
        project["dependencies"] if group == "runtime" else project["optional-dependencies"][group]
    )
    return [Requirement(line) for line in lines]


def unlocked(requirements: list[Requirement], locked: dict[NormalizedName, str]) -> list[str]:
    """The requirements a lock misses or pins at a version outside their specifier."""
    return [
        str(r)
        for r in requirements
        if canonicalize_name(r.name) not in locked
        or not r.specifier.contains(locked[canonicalize_name(r.name)], prereleases=True)
    ]


@pytest.mark.parametrize(
    ("group", "lock"), [("runtime", RUNTIME_LOCK), ("runtime", DEV_LOCK), ("dev", DEV_LOCK)]
)
def test_every_declared_dependency_is_pinned_within_its_range(group: str, lock: Path) -> None:
    """Each runtime and dev dependency is in the lock at a version its specifier allows."""
    missing = unlocked(declared(group), pins(lock.read_text()))
    assert missing == [], f"{lock.name} does not satisfy {missing}: {FIX}"


def test_a_dependency_missing_from_the_lock_is_caught() -> None:
    """A new dependency, or a raised lower bound, without a lock update is reported."""
    locked = pins(
        "aiohttp==3.14.5 \\\n    --hash=sha256:00\nPy_Thing==1.0 ; sys_platform == 'win32'\n"
    )
    assert locked == {"aiohttp": "3.14.5", "py-thing": "1.0"}
    assert unlocked([Requirement("py.thing>=1"), Requirement("AIOHTTP>=3.10")], locked) == []
    assert unlocked([Requirement("hypothesis>=6")], locked) == ["hypothesis>=6"]
    assert unlocked([Requirement("aiohttp>=3.15")], locked) == ["aiohttp>=3.15"]


def test_the_dev_lock_keeps_the_runtime_pins() -> None:
    """Tests run the exact runtime versions the image installs."""
    runtime, dev = pins(RUNTIME_LOCK.read_text()), pins(DEV_LOCK.read_text())
    assert len(runtime) >= 10
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}, FIX


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=["runtime", "dev"])
def test_every_pin_carries_hashes(lock: Path) -> None:
    """Every pinned package lists sha256 hashes, so `pip install --require-hashes` accepts it."""
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    pinned = [e for e in entries if PIN.match(e)]
    assert pinned and all("--hash=sha256:" in e for e in pinned)


def test_setup_and_image_install_from_the_locks_with_hashes() -> None:
    """make setup installs the dev lock and the image the runtime lock, hashes required."""
    setup = (ROOT / "scripts" / "setup-python").read_text()
    image = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements/dev.lock" in setup
    assert "--require-hashes -r requirements/runtime.lock" in image
    assert "requirements/dev.lock" in (ROOT / "Makefile").read_text().split("$(STAMP):")[1]
