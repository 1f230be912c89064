"""``asw-gateway validate``: exit codes, human output and --json, run in-process."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gateway.cli import validate

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
SAMPLE_FORMD = SAMPLES / "formd" / "valid" / "sg-th-basic.xml"

HS_BAD = SAMPLES / "formd/invalid/hs-code-length.xml"
WARNING = SAMPLES / "formd/warning/retroactive-flag-unneeded.xml"


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="asw-gateway")
    validate.register(parser.add_subparsers())
    args = parser.parse_args(["validate", *argv])
    result = args.handler(args)
    assert isinstance(result, int)
    return result


def test_valid_files_exit_0_and_say_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """Valid documents, warnings allowed, exit 0."""
    assert _run(str(SAMPLE_FORMD), str(WARNING)) == 0
    out = capsys.readouterr().out
    assert f"{SAMPLE_FORMD}: valid (EFD)" in out
    assert "warning retroactive-flag-unneeded [box 13]" in out


def test_an_invalid_file_exits_1_and_lists_box_and_hint(capsys: pytest.CaptureFixture[str]) -> None:
    """One invalid file among valid ones gives exit 1 and a Box 7 line with its hint."""
    assert _run(str(SAMPLE_FORMD), str(HS_BAD)) == 1
    out = capsys.readouterr().out
    assert "INVALID (EFD, 1 finding(s))" in out
    assert "error   hs-code-length [box 7] line 78: Box 7, goods item 1" in out
    assert "hint: For example 84821000" in out


def test_json_output_has_the_agreed_shape(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints per file {file, document_type, valid, findings[...]}."""
    assert _run("--json", str(HS_BAD)) == 1
    (result,) = json.loads(capsys.readouterr().out)
    assert set(result) == {"file", "document_type", "valid", "findings"}
    assert (result["document_type"], result["valid"]) == ("EFD", False)
    (finding,) = result["findings"]
    assert set(finding) == {"severity", "code", "box", "path", "line", "message", "hint"}
    assert (finding["code"], finding["box"], finding["line"]) == ("hs-code-length", "7", 78)


def test_unreadable_and_malformed_files_are_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Broken XML is a finding, exit 1; a missing file exits 66 and checks nothing (issue 16)."""
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"<fd:EFormD")
    assert _run("--json", str(broken)) == 1
    [malformed] = json.loads(capsys.readouterr().out)
    assert malformed["findings"][0]["code"] == "malformed-xml"
    assert _run("--json", str(tmp_path / "missing.xml"), str(broken)) == validate.EX_NOINPUT
    assert capsys.readouterr().out == ""


def test_bad_schema_dir_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A schema directory with a broken XSD stops the command with exit 2."""
    (tmp_path / "formd").mkdir()
    (tmp_path / "formd" / "formd-1.xsd").write_text("<not-a-schema/>")
    assert _run("--xsd-dir", str(tmp_path), str(SAMPLE_FORMD)) == 2
    assert "cannot load the schemas" in capsys.readouterr().err
