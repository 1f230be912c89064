"""The product wheel (asw-gateway) holds the product and none of the testers' tools."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Modules and folders that are tester tooling: none may be in a production install.
TOOLING = (
    "asw_toolkit/",
    "toolkit/",
    "gateway/testkit.py",
    "gateway/samplegen.py",
    "adapters/simulator.py",
    "gateway/core/pki.py",
    "gateway/cli/send.py",
    "gateway/cli/replay.py",
    "gateway/cli/conformance.py",
    "gateway/cli/samples.py",
    "gateway/cli/simulate.py",
    "samples/",
    "tests/",
    "bench/",
)
# What a production install needs to run and operate the gateway.
PRODUCT = (
    "gateway/__init__.py",
    "gateway/__main__.py",
    "gateway/app.py",
    "gateway/errors.py",
    "gateway/pki_files.py",
    "gateway/core/signatures.py",
    "gateway/core/trust.py",
    "gateway/core/validation.py",
    "gateway/journal/__init__.py",
    "gateway/cli/__init__.py",
    "gateway/cli/serve.py",
    "gateway/cli/sign.py",
    "gateway/cli/verify.py",
    "gateway/cli/validate.py",
    "gateway/cli/keys.py",
    "gateway/cli/pki.py",
    "gateway/cli/moved.py",
    "adapters/__init__.py",
    "adapters/http_push.py",
    "adapters/drop_folder.py",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file names inside a wheel built from the product's pyproject.toml, as pip builds it."""
    source = tmp_path_factory.mktemp("product-source")
    # a copy of what the build reads, so the build leaves nothing in the checkout
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("gateway", "adapters", "xsd"):  # xsd/ ships as gateway/xsd (force-include)
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("product-wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-index", "-q", "-w", str(out), str(source)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    wheels = list(out.glob("asw_gateway-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_files(wheel: Path) -> list[str]:
    """The names of the files inside the product wheel."""
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_is_the_product(wheel_files: list[str]) -> None:
    """The product wheel carries the gateway and its adapters, the console script and metadata."""
    missing = [name for name in PRODUCT if name not in wheel_files]
    assert missing == []
    entry_points = next(n for n in wheel_files if n.endswith(".dist-info/entry_points.txt"))
    assert entry_points.startswith("asw_gateway-")


def test_the_wheel_holds_no_tester_tooling(wheel_files: list[str]) -> None:
    """No toolkit, testkit, sample generator, NSW simulator, dev CA or tester command is inside."""
    inside = [n for n in wheel_files if any(n.startswith(tool) for tool in TOOLING)]
    assert inside == []


def test_the_wheel_declares_only_the_gateway_script(wheel: Path, wheel_files: list[str]) -> None:
    """The wheel's only console script is asw-gateway (asw-toolkit comes with the toolkit)."""
    name = next(n for n in wheel_files if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        lines = archive.read(name).decode().split("\n")
    scripts = [line for line in lines if "=" in line]
    assert scripts == ["asw-gateway = gateway.cli:main"]
