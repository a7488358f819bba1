"""The traffic commands' --help: each setting with its docstring, declared once."""

from __future__ import annotations

import pytest

from confroute.cli import main


@pytest.mark.parametrize("command, expected", [
    (["logs", "export"], ["--db DB", "--out OUT", "--test_fraction", "newest share of the rows",
                          "--top_adequate {true,false}", "default: 0.2"]),
    (["gate"], ["--candidate CANDIDATE", "--served SERVED", "--margin", "lower end of the gain",
                "--min_rows", "default: 100", "--promote {true,false}", "--log.test_fraction",
                "Confidence level of the gain's bootstrap CI", "Seed of the bootstrap"]),
    (["drift"], ["--artifact ARTIFACT", "--reference", "--band", "calibrated target +- this",
                 "--bucket_s"]),
])
def test_help_shows_each_setting_with_its_docstring(capsys: pytest.CaptureFixture[str],
                                                    command: list[str],
                                                    expected: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in expected:
        assert text in out, text


@pytest.mark.parametrize("command, absent", [
    (["logs", "export"], ["training from a:"]),  # a group title cut at the docstring's line end
    (["drift"], ["--window", "--min_decisions"]),  # /metrics settings the report never reads
])
def test_help_shows_no_cut_title_nor_unused_setting(capsys: pytest.CaptureFixture[str],
                                                    command: list[str], absent: list[str]) -> None:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    out = capsys.readouterr().out
    for text in absent:
        assert text not in out, text


def test_logs_needs_its_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs"]) == 2
    assert "export" in capsys.readouterr().err
