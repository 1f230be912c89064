"""Adapters depend only on the core's interfaces and the error tree, never on the shells."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ADAPTERS = Path(__file__).resolve().parents[2] / "adapters"


def _gateway_imports(tree: ast.AST) -> set[str]:
    """Every ``gateway`` module the tree imports (``from gateway import x`` gives gateway.x)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "gateway")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "gateway":
                found.update(f"gateway.{a.name}" for a in node.names)
            elif node.module.startswith("gateway."):
                found.add(node.module)
    return found


def _forbidden(modules: set[str]) -> set[str]:
    """The imports outside ``gateway.core.*`` and ``gateway.errors``."""
    return {m for m in modules if not (m.startswith("gateway.core.") or m == "gateway.errors")}


@pytest.mark.parametrize("module", sorted(ADAPTERS.rglob("*.py")), ids=lambda p: p.name)
def test_adapter_imports_only_core_interfaces_and_errors(module: Path) -> None:
    """An adapter module imports nothing from gateway but gateway.core.* and gateway.errors."""
    tree = ast.parse(module.read_text(encoding="utf-8"))
    assert _forbidden(_gateway_imports(tree)) == set()


def test_boundary_check_catches_a_shell_import() -> None:
    """The scan reports imports of the shells in every spelling (the check can fail)."""
    tree = ast.parse(
        "from gateway.submission import Submissions\n"
        "import gateway.journal\n"
        "from gateway import metrics\n"
        "from gateway.core.handover import Handover\n"
        "from gateway.errors import SettingsError\n"
    )
    assert _forbidden(_gateway_imports(tree)) == {
        "gateway.submission",
        "gateway.journal",
        "gateway.metrics",
    }
