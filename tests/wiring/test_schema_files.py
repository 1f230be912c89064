"""The schemas ship in the wheel as package data, so an installed gateway runs from anywhere."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from gateway.core.schemas import SCHEMA_FILES
from gateway.schema_files import shipped_xsd_dir, xsd_dir

ROOT = Path(__file__).resolve().parents[2]


def test_checkout_resolves_the_top_level_xsd_folder() -> None:
    """In a checkout, importlib.resources finds no gateway/xsd, so xsd/ at the top is used."""
    assert shipped_xsd_dir() == ROOT / "xsd"
    assert all((shipped_xsd_dir() / f).is_file() for f in SCHEMA_FILES.values())
    assert xsd_dir("") == ROOT / "xsd"
    assert xsd_dir("/elsewhere/xsd") == Path("/elsewhere/xsd")


def test_installed_wheel_loads_its_schemas_from_any_directory(tmp_path: Path) -> None:
    """A built wheel holds gateway/xsd; unpacked, it validates from /tmp with no checkout."""
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("gateway", "adapters", "xsd"):
        shutil.copytree(
            ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--no-index", "-q", "-w", str(tmp_path / "dist"),
         str(source)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(site)
    assert {f"gateway/xsd/{f}" for f in SCHEMA_FILES.values()} <= set(names)
    script = (
        "import gateway\n"
        "from gateway.schema_files import shipped_xsd_dir\n"
        "from gateway.core.validation import Validator\n"
        "print(gateway.__file__)\n"
        "print(shipped_xsd_dir())\n"
        f"print(len(Validator.load(shipped_xsd_dir()).schemas) == {len(SCHEMA_FILES)})\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd="/tmp",
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    module, schemas, loaded = result.stdout.split()
    assert module == str(site / "gateway" / "__init__.py")
    assert schemas == str(site / "gateway" / "xsd")
    assert loaded == "True"
