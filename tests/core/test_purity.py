"""The pure core never imports the I/O frameworks nor reads the environment or the clock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "gateway" / "core"
FORBIDDEN_MODULES = {"aiohttp", "aio_pika", "aiormq", "asyncio"}


def _core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", _core_modules(), ids=lambda p: p.name)
def test_core_module_imports_no_io_framework(module: Path) -> None:
    """No gateway.core module imports aiohttp, aio_pika, aiormq or asyncio."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    assert _imported_roots(tree) & FORBIDDEN_MODULES == set()


@pytest.mark.parametrize("module", _core_modules(), ids=lambda p: p.name)
def test_core_module_reads_no_environment_or_clock(module: Path) -> None:
    """No gateway.core module reads os.environ or the wall clock itself."""
    source = module.read_text(encoding="utf-8")
    for forbidden in ("os.environ", "getenv(", "datetime.now(", "time.time(", "utcnow("):
        assert forbidden not in source, f"{module.name} uses {forbidden}"


def test_purity_check_catches_a_violation(tmp_path: Path) -> None:
    """The import scan really detects an asyncio import (the check can fail)."""
    tree = ast.parse("import os\nfrom asyncio import sleep\nimport aiohttp.web\n")
    assert _imported_roots(tree) & FORBIDDEN_MODULES == {"asyncio", "aiohttp"}


def test_core_is_importable_without_io_frameworks() -> None:
    """Importing every core module pulls in none of the I/O frameworks."""
    import subprocess
    import sys

    modules = ", ".join(
        ".".join(p.relative_to(CORE.parents[1]).with_suffix("").parts).removesuffix(".__init__")
        for p in _core_modules()
    )
    script = (
        f"import sys\nimport {modules}\n"
        "bad = sorted(m for m in ('aiohttp', 'aio_pika', 'aiormq') if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
