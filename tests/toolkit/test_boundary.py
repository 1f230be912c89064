"""The product never imports the testers' tools: no asw_toolkit import in gateway/ or adapters/."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("gateway", "adapters")
TOOLKIT = "asw_toolkit"


def _product_modules() -> list[Path]:
    return sorted(p for package in PRODUCT_PACKAGES for p in (ROOT / package).rglob("*.py"))


def toolkit_imports(source: str) -> list[str]:
    """Every import of ``asw_toolkit`` in ``source``: statements, and names given to importlib."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == TOOLKIT]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == TOOLKIT:
                found.append(node.module)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.split(".")[0] == TOOLKIT
        ):
            found.append(node.value)  # importlib.import_module("asw_toolkit...") and the like
    return found


def test_the_product_packages_are_found() -> None:
    """The scan sees the product's modules (a wrong root would make the next test vacuous)."""
    names = {p.relative_to(ROOT).as_posix() for p in _product_modules()}
    assert {"gateway/app.py", "gateway/cli/__init__.py", "adapters/http_push.py"} <= names


@pytest.mark.parametrize(
    "source",
    [
        "import asw_toolkit",
        "import asw_toolkit.testkit as tk",
        "from asw_toolkit.samplegen import generate",
        "def f():\n    from asw_toolkit import dev_pki\n",
        "import importlib\nimportlib.import_module('asw_toolkit.cli.send')",
    ],
)
def test_the_scan_catches_every_form_of_import(source: str) -> None:
    """Plain, aliased, from-, function-level and importlib imports of the tools are all found."""
    assert toolkit_imports(source)


def test_the_scan_ignores_other_imports() -> None:
    """Imports of the product itself and of libraries are not reported."""
    assert toolkit_imports("import gateway.core\nfrom adapters import http_push\nimport lxml") == []


@pytest.mark.parametrize("module", _product_modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_product_module_does_not_import_the_toolkit(module: Path) -> None:
    """No module of gateway/ or adapters/ imports asw_toolkit."""
    assert toolkit_imports(module.read_text(encoding="utf-8")) == []
