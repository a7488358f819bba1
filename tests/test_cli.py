"""The console script: help text, the route/calibrate/export commands, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from confroute.cli import COMMANDS, build_parser, main


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "confroute", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=300)


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out
    for name in COMMANDS:  # every subcommand has its own help
        with pytest.raises(SystemExit):
            build_parser().parse_args([name, "--help"])
        assert "usage: confroute " + name in capsys.readouterr().out


def test_route_from_arguments_file_and_stdin(tiny_artifact: Path, tmp_path: Path) -> None:
    out = run_cli("route", str(tiny_artifact), "What is 2 plus 2?", "Prove Fermat's theorem.")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["index"] for x in lines] == [0, 1]
    assert all(x["route"] in ("edge", "cloud") and 0 <= x["score"] <= 1 for x in lines)

    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a"}\n"b"\n\n{"messages": [{"role": "user", "content": "c"}]}\n')
    out = run_cli("route", str(tiny_artifact), "--file", str(jsonl), "--threshold", "0")
    assert out.returncode == 0, out.stderr
    assert [json.loads(x)["route"] for x in out.stdout.splitlines()] == ["cloud"] * 3

    out = run_cli("route", str(tiny_artifact), "--threshold", "1", stdin="one\n\ntwo\n")
    assert [json.loads(x)["route"] for x in out.stdout.splitlines()] == ["edge", "edge"]


@pytest.mark.parametrize("args, stdin, message", [
    (["route", "{art}", ""], None, "argument 1: prompt is empty"),
    (["route", "{art}", "--file", "{tmp}/none.txt"], None, "does not exist"),
    (["route", "{art}"], '{"prompt": "ok"}\n{"text": 1}\n', "stdin line 2.*'prompt' or 'messages'"),
    (["route", "{art}"], '{"prompt": "ok"}\n{broken\n', "stdin line 2 is not valid JSON"),
    (["route", "{tmp}/missing", "hi"], None, "does not exist; make one with `confroute export"),
    (["route", "{art}", "hi", "--threshold", "2"], None, "threshold must be a number in"),
    (["calibrate", "{art}", "--cloud-fraction", "1.5"], "a\nb\n", "cloud_fraction must be in"),
    (["export", "{tmp}", "--out", "{tmp}/a"], None, "not a complete training run"),
    (["train", "--out", "{tmp}/r", "--set", "train.bogus=1"], None, "unknown setting"),
    (["train", "--out", "{tmp}/r", "--data", "{tmp}/nothing.csv"], None, "does not exist"),
])
def test_errors_are_one_line_without_traceback(tiny_artifact: Path, tmp_path: Path,
                                               args: list[str], stdin: str | None,
                                               message: str) -> None:
    args = [a.format(art=tiny_artifact, tmp=tmp_path) for a in args]
    out = run_cli(*args, stdin=stdin)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"confroute {args[0]}: error:")
    assert __import__("re").search(message, lines[0]), lines[0]


def test_calibrate_writes_the_threshold(tiny_artifact: Path, tmp_path: Path) -> None:
    import shutil

    art = shutil.copytree(tiny_artifact, tmp_path / "art")
    prompts = "".join(f"prompt number {i}\n" for i in range(20))
    out = run_cli("calibrate", str(art), "--cloud-fraction", "0.25", "--write", stdin=prompts)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    manifest = json.loads((Path(art) / "router.json").read_text())
    assert manifest["threshold"]["default"] == result["threshold"]
    routed = run_cli("route", str(art), stdin=prompts)
    assert [json.loads(x)["route"] for x in routed.stdout.splitlines()].count("cloud") == 5


def test_datasets_lists_the_bundled_ones() -> None:
    out = run_cli("datasets")
    assert out.returncode == 0 and "routellm-judge" in out.stdout
    assert "Label rule" in run_cli("datasets", "routellm-judge").stdout


def test_bad_manifests_and_data_are_one_line_errors(tiny_artifact: Path, tiny_run_dir: Path,
                                                   tmp_path: Path) -> None:
    """Issue 14 items 4, 5 and 8 at the CLI: the field, column or file is named, no traceback."""
    import shutil

    art = Path(shutil.copytree(tiny_artifact, tmp_path / "art"))
    manifest = json.loads((art / "router.json").read_text())
    run = Path(shutil.copytree(tiny_run_dir, tmp_path / "run"))
    (run / "metrics.json").write_text("{half")
    rated = tmp_path / "rated.csv"
    rated.write_text("prompt,rating_edge,rating_cloud\nhi,1,2\nho,yes,3\n")
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("prompt,label\n" + "".join(f"p{i},{i % 2}\n" for i in range(9))
                        + "p9,no\n")
    cases = [
        (("threshold", {"default": "abc"}), ["route", str(art), "hi"],
         r"field 'threshold.default'.*confroute calibrate"),
        (("preprocess", {**manifest["preprocess"], "max_length": 10**9}),
         ["route", str(art), "hi"], "max_length 1000000000 exceeds"),
        (None, ["export", str(run), "--out", str(tmp_path / "a")],
         r"metrics.json is damaged.*confroute train"),
        (None, ["evaluate", "--scores", str(rated), "--truth", str(rated), "--out",
                str(tmp_path / "ev")], "column 'rating_edge' must hold numbers; row 1 has 'yes'"),
        (None, ["train", "--out", str(tmp_path / "r"), "--data", str(labelled)],
         "column 'label' must hold numbers; row 9 has 'no'"),
    ]
    for edit, args, message in cases:
        if edit is not None:
            (art / "router.json").write_text(json.dumps({**manifest, edit[0]: edit[1]}))
        out = run_cli(*args)
        assert out.returncode == 2, out.stderr[-500:]
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-800:]
        assert __import__("re").search(message, lines[0]), lines[0]
