"""asw-toolkit carries the tester commands; asw-gateway names the new home of each moved one."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import pytest

from asw_toolkit.cli import build_parser as toolkit_parser
from asw_toolkit.cli import main as toolkit_main
from gateway.cli import build_parser as gateway_parser
from gateway.cli import main as gateway_main
from gateway.cli.moved import EXIT_MOVED

ROOT = Path(__file__).resolve().parents[2]
MOVED = ("send", "replay", "conformance", "samples", "simulate-nsw")


def _commands(parser: object) -> set[str]:
    actions = getattr(parser, "_subparsers")._group_actions  # noqa: B009
    return set(actions[0].choices)


def test_the_toolkit_has_every_tester_command() -> None:
    """asw-toolkit offers send, replay, conformance, samples, simulate-nsw and pki."""
    assert _commands(toolkit_parser()) == {*MOVED, "pki"}


def test_the_gateway_keeps_the_operator_commands() -> None:
    """asw-gateway keeps serve, sign, verify, validate, keys and pki (expiring)."""
    assert {"serve", "sign", "verify", "validate", "keys", "pki"} <= _commands(gateway_parser())


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["send", "samples/formd/valid/sg-th-basic.xml", "--url", "http://x"], "send"),
        (["replay", "samples"], "replay"),
        (["conformance", "--url", "http://x"], "conformance"),
        (["samples", "generate", "--type", "formd", "out"], "samples"),
        (["simulate-nsw", "--country", "TH", "--port", "9001"], "simulate-nsw"),
        (["pki", "init", "certs/dev"], "pki init"),
    ],
)
def test_a_moved_command_names_asw_toolkit(
    argv: list[str], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """asw-gateway <moved> exits 2 and says to run asw-toolkit <moved>, doing nothing else."""
    assert gateway_main(argv) == EXIT_MOVED
    err = capsys.readouterr().err
    assert f"asw-toolkit {name}" in err
    assert "moved" in err


def test_regenerating_the_samples_gives_the_committed_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`asw-toolkit samples regenerate` on a copy of samples/ leaves every file byte-identical."""
    copy = tmp_path / "samples"
    shutil.copytree(ROOT / "samples", copy)
    for derived in (copy / "formd" / "invalid").glob("*.xml"):
        derived.unlink()  # must be written again, not merely left in place
    (copy / "manifest.json").unlink()
    assert toolkit_main(["samples", "regenerate", "--dir", str(copy)]) == 0
    assert "samples; large Form D" in capsys.readouterr().out
    compared = filecmp.dircmp(ROOT / "samples", copy)
    differ: list[str] = []

    def walk(cmp: filecmp.dircmp[str], prefix: str) -> None:
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        differ.extend(prefix + n for n in [*mismatch, *errors, *cmp.left_only, *cmp.right_only])
        for name, sub in cmp.subdirs.items():
            walk(sub, f"{prefix}{name}/")

    walk(compared, "")
    assert differ == []


def test_regenerate_refuses_a_folder_that_is_not_the_samples(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder without formd/valid/ is refused with exit 2 and nothing written."""
    assert toolkit_main(["samples", "regenerate", "--dir", str(tmp_path)]) == 2
    assert "not a samples folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
