"""Prompt input at the CLI (`route`, `calibrate`): every entry point follows confroute.text's
one policy and fails with one line naming the input line, never a traceback."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from confroute.cli import main

CUT_EMOJI_JSONL = b'{"prompt": "great phone \\ud83d"}\n'
ROOT = Path(__file__).resolve().parents[1]


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str],
             monkeypatch: pytest.MonkeyPatch, stdin: bytes | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err.strip()


def one_line_error(err: str, command: str) -> str:
    assert err.startswith(f"confroute {command}: error: ") and "\n" not in err, err
    return err


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    found = {"latin1": tmp_path / "latin1.txt", "surrogate": tmp_path / "cut.jsonl",
             "nullpart": tmp_path / "null.jsonl", "bom": tmp_path / "bom.txt",
             "ties": tmp_path / "ties.txt"}
    found["latin1"].write_bytes("ok prompt\ncaf\xe9 cr\xe8me\n".encode("latin-1"))
    found["surrogate"].write_bytes(b'"fine"\n' + CUT_EMOJI_JSONL)
    found["nullpart"].write_text(json.dumps(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": None}]}]}) + "\n")
    found["bom"].write_bytes("\ufeffWhat is 2 plus 2?\r\nSpell cat.\r\n".encode())
    found["ties"].write_text("What is 2 plus 2?\n" * 10 + "".join(
        f"Prove theorem {i} about primes by induction.\n" for i in range(10)))
    return found


@pytest.mark.parametrize("command", ["route", "calibrate"])
@pytest.mark.parametrize("name, message", [
    ("latin1", "latin1.txt line 2 is not UTF-8: byte 3 is 0xe9; convert the input to UTF-8"),
    ("surrogate", "cut.jsonl line 2: prompt is not valid Unicode text: character 12 is a lone "
                  "surrogate U+D83D"),
    ("nullpart", "null.jsonl line 1: prompt: message 0 part 0: a text part's 'text' must be a "
                 "string; found NoneType"),
])
def test_bad_files_name_the_line(tiny_artifact: Path, files: dict[str, Path], command: str,
                                 name: str, message: str, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [command, str(tiny_artifact), "--file", str(files[name])]
    argv += ["--cloud_fraction", "0.3"] if command == "calibrate" else []
    code, out, err = run_main(argv, capsys, monkeypatch)
    assert code == 2 and message in one_line_error(err, command)
    assert out == ""


def test_bad_stdin_names_the_line(tiny_artifact: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run_main(["route", str(tiny_artifact)], capsys, monkeypatch,
                            stdin=b"ok prompt\n\xff\xfe\xfd bad bytes\n")
    assert code == 2 and "stdin line 2 is not UTF-8: byte 0 is 0xff" in one_line_error(err, "route")
    code, _, err = run_main(["calibrate", str(tiny_artifact), "--cloud_fraction", "0.5"], capsys,
                            monkeypatch, stdin=CUT_EMOJI_JSONL)
    assert code == 2 and "stdin line 1: prompt is not valid Unicode" in err


def test_an_argument_with_bytes_that_are_not_utf8(tiny_artifact: Path,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Python hands such argv bytes to the program as U+DC80..U+DCFF (PEP 383)
    code, _, err = run_main(["route", str(tiny_artifact), "fine", "bad \udcff byte"], capsys,
                            monkeypatch)
    assert code == 2
    assert "argument 2 is not valid Unicode text: character 4 is a lone surrogate U+DCFF, the " \
        "byte 0xff, which is not UTF-8" in one_line_error(err, "route")


def test_the_real_process_reads_bytes_from_argv_and_stdin(tiny_artifact: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    base = [os.fsencode(sys.executable), b"-m", b"confroute", b"route",
            os.fsencode(str(tiny_artifact))]
    for extra, stdin in (([b"bad \xff bytes"], b""), ([], b"ok prompt\n\xff\xfe\xfd bad\n")):
        done = subprocess.run(base + extra, input=stdin, capture_output=True, env=env, timeout=120)
        err = done.stderr.decode()
        assert done.returncode == 2 and "Traceback" not in err, err
        assert "0xff" in one_line_error(err.strip(), "route")


def test_bom_and_crlf_are_not_part_of_the_prompt(tiny_artifact: Path, files: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_main(["route", str(tiny_artifact), "--file", str(files["bom"])], capsys,
                            monkeypatch)
    plain = tiny_artifact.parent / "plain.txt"
    plain.write_text("What is 2 plus 2?\nSpell cat.\n")
    code2, out2, _ = run_main(["route", str(tiny_artifact), "--file", str(plain)], capsys,
                              monkeypatch)
    assert code == code2 == 0 and out == out2


@pytest.mark.parametrize("argv, message", [
    (["route", "ART", "hi", "--threshold", "nan"], "threshold must be a number or null; "
                                                   "found 'nan'"),
    (["route", "ART", "hi", "--threshold", "inf"], "found 'inf'"),
    (["route", "ART", "hi", "--threshold", "1.5"], "threshold must be a number in [0, 1]; "
                                                   "found 1.5"),
    (["calibrate", "ART", "--cloud_fraction", "nan"], "cloud_fraction must be a number or null; "
                                                      "found 'nan'"),
    (["calibrate", "ART", "--cloud_fraction", "1.5"], "found 1.5"),
    (["route", "ART", "--file", "DIR"], "is a directory, not a file"),
    (["route", "ART", "--file", "DIR/missing.txt"], "does not exist"),
])
def test_bad_numbers_and_paths_are_one_line(tiny_artifact: Path, tmp_path: Path,
                                            argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    argv = [a.replace("ART", str(tiny_artifact)).replace("DIR", str(tmp_path)) for a in argv]
    code, out, err = run_main(argv, capsys, monkeypatch, stdin=b"hi\n")
    assert code == 2 and message in one_line_error(err, argv[0]) and out == ""


def test_calibrate_with_ties_reports_the_achieved_share(tiny_artifact: Path,
                                                        files: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from confroute.runtime import Router

    prompts = files["ties"].read_text().splitlines()
    scores = Router.load(tiny_artifact).score(prompts)
    # ask for the share that cuts the 10 copies of one prompt in half: it is not achievable
    above = int((scores > scores[0]).sum())
    fraction = (above + 5) / 20
    code, out, err = run_main(["calibrate", str(tiny_artifact), "--file", str(files["ties"]),
                               "--cloud_fraction", str(fraction)], capsys, monkeypatch)
    assert code == 0
    result = json.loads(out)
    assert result["prompts"] == 20 and result["distinct_scores"] == len(set(scores.tolist()))
    assert result["achieved_cloud_fraction"] in (above / 20, (above + 10) / 20)
    assert "warning: calibrated on only 20 prompts" in err
    _, counts = np.unique(scores, return_counts=True)
    assert counts.max() >= 10  # the 10 copies of one prompt, perhaps with others
    assert f"{counts[counts > 1].sum()} of 20 prompts share a score" in err
    routes = run_main(["route", str(tiny_artifact), "--file", str(files["ties"]),
                       "--threshold", str(result["threshold"])], capsys, monkeypatch)[1]
    share = sum(json.loads(x)["route"] == "cloud" for x in routes.splitlines()) / 20
    assert share == result["achieved_cloud_fraction"]


@pytest.mark.parametrize("where", ["under_a_file", "a_file_as_folder", "read_only"])
def test_an_output_path_that_cannot_be_written_is_one_line(
        tiny_run_dir: Path, tiny_artifact: Path, tmp_path: Path, where: str,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    blocker = tmp_path / "afile"
    blocker.write_text("a user's file\n")
    if where == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "artifact"
    else:
        out = blocker / "artifact" if where == "under_a_file" else blocker
    for argv in (["export", str(tiny_run_dir), "--out", str(out)],
                 ["evaluate", "--cascade", "true", "--router", str(tiny_artifact), "--truth",
                  "smollm2-uncertainty:val", "--out", str(out / "eval")]):
        code, _, err = run_main(argv, capsys, monkeypatch)
        assert code == 2, err
        one_line_error(err, argv[0])
        assert "afile" in err or "locked" in err, err
    assert blocker.read_text() == "a user's file\n"  # nothing lost
