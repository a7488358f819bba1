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
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: confroute " + name in capsys.readouterr().out
    assert main([]) == 2 and "usage: confroute" in capsys.readouterr().err
    assert main(["trian"]) == 2
    assert ("unknown command 'trian'; write `confroute COMMAND [options]` with a COMMAND from "
            "train, export") in capsys.readouterr().err
    assert main(["--out", "export", "train"]) == 2  # two command names: which one is meant?
    assert "the option '--out' before any command" in capsys.readouterr().err


@pytest.mark.parametrize("command, expected", [
    # A field's docstring is its flag's help and its default is the field's, shown once.
    ("train", ["--train.max_steps", "Stop after this many optimiser steps",
               "--data.label.tau", "Paper Eq. 3/4", "--train.trainer.devices",
               "--model.encoder", "default: minilm", "--config CONFIG"]),
    ("tune", ["--space.learning_rate", "log-uniform range", "--base CONFIG",
              "--base.train.max_steps", "val_auroc", "val_ece", "--n_trials"]),
    ("export", ["--int8 {true,false}", "--threshold", "--parity_tolerance"]),
    ("serve", ["--batch_max", "Micro-batching", "--edge.base_url", "--fallback {true,false}"]),
    ("label", ["--sampling.temperature", "--measure.equivalence", "--label.rule"]),
    ("evaluate", ["--router ROUTER", "--truth TRUTH", "--cost CONFIG", "--cost.edge_input"]),
])
def test_help_shows_each_setting_with_its_docstring(capsys: pytest.CaptureFixture[str],
                                                    command: str, expected: list[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # undo the help's line wrapping
    for text in expected:
        assert text in out, text
    assert "--token" not in out  # serve's bearer token comes from the environment only


def test_train_settings_from_defaults_then_config_then_flags(tmp_path: Path) -> None:
    from confroute.config import RunConfig, build, dump_yaml, override

    config = tmp_path / "run.yaml"
    dump_yaml(override(RunConfig(), {"train.max_steps": 7, "train.batch_size": 4}), config)
    parser = build_parser("train")
    args = parser.instantiate(parser.parse_args(
        ["--out", "o", "--config", str(config), "--train.batch_size", "2",
         "--train.trainer.devices", "2", "--train.val_check_interval", "3"]))
    cfg = build(RunConfig, args)
    assert (cfg.train.max_steps, cfg.train.batch_size) == (7, 2)
    assert cfg.train.trainer.devices == 2 and cfg.train.val_check_interval == 3
    assert isinstance(cfg.train.val_check_interval, int)  # batches, not a share of an epoch
    assert cfg.model == RunConfig().model  # untouched sections keep the dataclass defaults


def test_route_from_arguments_file_and_stdin(tiny_artifact: Path, tmp_path: Path) -> None:
    out = run_cli("route", str(tiny_artifact), "What is 2 plus 2?", "Prove Fermat's theorem.")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["index"] for x in lines] == [0, 1]
    assert all(x["route"] in ("edge", "cloud") and 0 <= x["score"] <= 1 for x in lines)
    # the two-model fields as before, then the K-model fields of the same decision
    assert list(lines[0])[:4] == ["index", "score", "route", "threshold"]
    assert all(x["model"] == x["route"] and list(x["probabilities"]) == ["edge", "cloud"]
               for x in lines)

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
    (["route", "{art}", "hi", "--threshold", "high"], None,
     "threshold must be a number or null; found .high."),
    (["route", "{art}", "hi", "--variant", "int4"], None,
     "variant must be one of 'auto', 'fp32', 'int8'; found 'int4'"),
    (["calibrate", "{art}", "--cloud_fraction", "1.5"], "a\nb\n",
     "cloud_fraction must be a number in"),
    (["calibrate", "{art}"], "a\n", r"routes between two models \(edge, cloud\): give "
     "--cloud_fraction F"),
    (["export", "{tmp}", "--out", "{tmp}/a"], None, "not a complete training run"),
    (["export", "{tmp}", "--out", "{tmp}/a", "--threshold", "nan"], None, "threshold"),
    (["train", "--out", "{tmp}/r", "--train.bogus", "1"], None, "unrecognized arguments"),
    (["train", "--out", "{tmp}/r", "--train.batch_size", "big"], None,
     "train.batch_size must be a whole number; found 'big'"),
    (["train", "--out", "{tmp}/r", "--train.batch_size", "0"], None, "batch_size must be >= 1"),
    (["train", "--out", "{tmp}/r", "--data.label.tau", "nan"], None, "data.label.tau"),
    (["train", "--out", "{tmp}/r", "--config", "{tmp}/none.yaml"], None, "does not exist"),
    (["train", "--out", "{tmp}/r", "--config", "{tmp}/typo.yaml"], None,
     "typo.yaml is not valid: unknown setting train.max_step"),
    (["train", "--out", "{tmp}/r", "--config", "{tmp}/broken.yaml"], None, "broken.yaml"),
    (["train", "--out", "{tmp}/r", "--config", "{tmp}/list.yaml"], None,
     "list.yaml must hold settings as `key: value` lines .*found '- a - b'"),
    (["serve", "{art}", "--config", "{tmp}/empty.yaml"], None,
     "empty.yaml must hold settings .*found an empty file; fill it in, or leave out --config"),
    (["train", "--out", "{tmp}/r", "--data.source", "{tmp}/nothing.csv"], None, "does not exist"),
    (["train"], None, "required: out"),
    (["tune", "--out", "{tmp}/t", "--metric", "val_f1"], None,
     "metric must be one of .*; found 'val_f1'"),
    (["tune", "--out", "{tmp}/t", "--n_trials", "0"], None, "n_trials must be >= 1"),
    (["serve", "{art}", "--port", "70000"], None, "port must be in"),
    (["serve", "{art}", "--cors_origins", "*"], None,
     r"cors_origins must be a list, in brackets \(--key '\[.*found '\*'"),
    (["serve", "{art}", "--token", "secret"], None, "unrecognized arguments"),
])
def test_errors_are_one_line_without_traceback(tiny_artifact: Path, tmp_path: Path,
                                               args: list[str], stdin: str | None,
                                               message: str) -> None:
    args = [a.format(art=tiny_artifact, tmp=tmp_path) for a in args]
    (tmp_path / "typo.yaml").write_text("train:\n  max_step: 3\n")
    (tmp_path / "broken.yaml").write_text("train: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "empty.yaml").write_text("")
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
    out = run_cli("calibrate", str(art), "--cloud_fraction", "0.25", "--write", stdin=prompts)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    manifest = json.loads((Path(art) / "router.json").read_text())
    assert manifest["routing"]["threshold"] == result["threshold"]
    assert manifest["routing"]["source"]["cloud_fraction"] == 0.25
    routed = run_cli("route", str(art), stdin=prompts)
    # tie-aware: the written threshold sends exactly the achieved share (the nearest to 25%)
    achieved = round(result["achieved_cloud_fraction"] * 20)
    assert abs(achieved - 5) <= result["prompts"] - result["distinct_scores"] + 1
    assert [json.loads(x)["route"] for x in routed.stdout.splitlines()].count("cloud") == achieved


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
        (None, ["train", "--out", str(tmp_path / "r"), "--data.source", str(labelled)],
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


# --- issue 23 item 3: options before, between and after positional arguments ------------------

ANYWHERE = [  # (command, argv, expected settings): each a way users write the same command
    ("route", ["ART", "a", "--threshold", "0.5", "b"], {"prompts": ["a", "b"], "threshold": 0.5}),
    ("route", ["--threshold", "0.5", "ART", "a", "b"], {"prompts": ["a", "b"], "threshold": 0.5}),
    ("route", ["ART", "--threshold=0.5", "a", "--variant", "fp32", "b"],
     {"prompts": ["a", "b"], "threshold": 0.5, "variant": "fp32"}),
    ("route", ["--variant", "fp32", "ART", "a", "--model", "m", "b", "--threshold", "0.5"],
     {"artifact": "ART", "prompts": ["a", "b"], "model": "m"}),
    ("route", ["ART", "a", "--thresholds", '{"small": 0.5}', "b"],
     {"prompts": ["a", "b"], "thresholds": {"small": 0.5}}),
    ("route", ["ART", "-5", "--threshold", "0.5", "-"], {"prompts": ["-5", "-"]}),
    ("route", ["ART", "a", "--threshold", "0.5", "--", "--b", "-c"],
     {"prompts": ["a", "--b", "-c"], "threshold": 0.5}),
    ("route", ["ART", "a", "--varia", "int8", "b"], {"prompts": ["a", "b"], "variant": "int8"}),
    ("calibrate", ["--cloud_fraction", "0.3", "ART", "--write"],
     {"artifact": "ART", "cloud_fraction": 0.3, "write": True}),
    ("calibrate", ["--write", "ART", "--file", "f.txt"], {"write": True, "file": "f.txt"}),
    ("export", ["--out", "o", "RUN", "--threshold", "0.3"],
     {"run_dir": "RUN", "out": "o", "threshold": 0.3}),
    ("export", ["--threshold", "0.3", "RUN", "--out", "o"], {"run_dir": "RUN", "out": "o"}),
    ("serve", ["--port", "0", "ART", "--access_log", "false"],
     {"artifact": "ART", "port": 0, "access_log": False}),
    ("serve", ["--cors_origins+", "http://a.test", "ART", "--edge.model", "m"],
     {"artifact": "ART", "cors_origins": ["http://a.test"]}),
    ("label", ["--sampling.n", "3", "P.jsonl", "--out", "o"], {"prompts": "P.jsonl", "out": "o"}),
    ("label", ["--out", "o", "P.jsonl", "--limit", "2"], {"prompts": "P.jsonl", "limit": 2}),
    ("judge", ["--gold", "false", "T.jsonl", "--out", "o"], {"table": "T.jsonl", "gold": False}),
    ("judge", ["--out", "o", "T.jsonl", "--concurrency", "2"], {"table": "T.jsonl"}),
    ("datasets", ["routellm-judge"], {"name": "routellm-judge"}),
    ("logs", ["--db", "sqlite:///x.db", "export", "--out", "t.jsonl"], {"action": "export"}),
    ("logs", ["export", "--out", "t.jsonl", "--db", "sqlite:///x.db"], {"action": "export"}),
]


@pytest.mark.parametrize("command, argv, expected", ANYWHERE)
def test_options_go_before_between_and_after_positionals(command: str, argv: list[str],
                                                         expected: dict[str, object]) -> None:
    from confroute.cli import parse_command

    namespace = vars(parse_command(command, argv))
    assert {k: namespace[k] for k in expected} == expected


@pytest.mark.parametrize("argv, expected", [
    (["--threshold", "0.5", "route", "ART", "a"], ["route", "--threshold", "0.5", "ART", "a"]),
    (["--out", "o", "export", "RUN"], ["export", "--out", "o", "RUN"]),
    (["--out", "export", "train"], ["--out", "export", "train"]),  # ambiguous: left as written
    (["route", "ART", "serve"], ["route", "ART", "serve"]),
])
def test_options_before_the_command_are_the_commands(argv: list[str],
                                                     expected: list[str]) -> None:
    from confroute.cli import command_first

    assert command_first(argv) == expected


def test_every_command_with_positionals_is_tried_with_options_anywhere() -> None:
    with_positionals = {c for c in COMMANDS
                        if any(not a.option_strings for a in build_parser(c)._actions)}
    assert with_positionals == {c for c, _, _ in ANYWHERE}


def test_route_and_calibrate_run_with_options_between_prompts(
        tiny_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    assert main(["route", str(tiny_artifact), "What is 2 plus 2?", "--threshold", "0",
                 "Prove it.", "--variant", "fp32"]) == 0
    assert [json.loads(x)["route"] for x in capsys.readouterr().out.splitlines()] == ["cloud"] * 2
    assert main(["--threshold", "1", "route", str(tiny_artifact), "a"]) == 0
    assert json.loads(capsys.readouterr().out)["route"] == "edge"
    prompts = tmp_path / "p.txt"
    prompts.write_text("".join(f"prompt number {i}\n" for i in range(8)))
    art = shutil.copytree(tiny_artifact, tmp_path / "art")
    assert main(["calibrate", "--cloud_fraction", "0.25", str(art), "--file", str(prompts),
                 "--write"]) == 0
    assert json.loads(capsys.readouterr().out)["threshold"] == json.loads(
        (art / "router.json").read_text())["routing"]["threshold"]


@pytest.mark.parametrize("argv, message", [
    (["calibrate", "ART", "extra", "--write"],
     "unrecognized arguments: extra (confroute calibrate takes ARTIFACT and options; see --help)"),
    (["route", "ART", "a", "--bogus", "b"],
     "unrecognized arguments: --bogus (confroute route takes ARTIFACT [PROMPTS ...] and options"),
    (["train", "--out", "o", "extra"], "unrecognized arguments: extra (confroute train takes "
                                       "options only"),
    (["datasets", "a", "b"], "unrecognized arguments: b (confroute datasets takes [NAME]"),
    (["route", "ART", "--thresh", "0.5"], "ambiguous option: --thresh could match --threshold,"),
])
def test_a_stray_argument_says_what_the_command_takes(argv: list[str], message: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
