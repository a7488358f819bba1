"""Issue 27: confroute collects and sends nothing by default. With a fresh HOME, routing, scoring
and export leave no file there (onnxruntime 1.32 wrote a device id and an upload queue on import);
with the opt-in, onnxruntime behaves as it does by itself; a host that imported onnxruntime first
is told, once, which variable to set. (`confroute serve`: tests/serve/test_serve_privacy.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from fresh_home import files_under, run_fresh

from confroute import privacy


def test_apply_sets_only_what_is_unset() -> None:
    env = {"ORT_DISABLE_TELEMETRY": "0"}  # an operator's choice, even one that allows it
    assert privacy.apply(env) == {k: v for k, v in privacy.DEFAULTS.items()
                                  if k != "ORT_DISABLE_TELEMETRY"}
    assert env["ORT_DISABLE_TELEMETRY"] == "0"
    assert env["HF_HUB_DISABLE_TELEMETRY"] == "1"
    assert privacy.apply(env) == {}  # idempotent


@pytest.mark.parametrize("value", ["1", "true", "YES", " on "])
def test_opt_in_sets_nothing(value: str) -> None:
    env = {privacy.ALLOW_ENV: value}
    assert privacy.apply(env) == {}
    assert env == {privacy.ALLOW_ENV: value}


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_anything_else_is_no_opt_in(value: str) -> None:
    env = {privacy.ALLOW_ENV: value}
    privacy.apply(env)
    assert env["ORT_DISABLE_TELEMETRY"] == "1"


def test_import_confroute_sets_the_variables(tmp_path: Path) -> None:
    code = ("import os, confroute; print([os.environ.get(k) for k in "
            f"{sorted(privacy.DEFAULTS)!r}])")
    out = run_fresh(tmp_path / "home", ["-c", code])
    assert out.stdout.strip() == str([privacy.DEFAULTS[k] for k in sorted(privacy.DEFAULTS)])


def test_route_leaves_nothing_in_home(tmp_path: Path, tiny_artifact: Path) -> None:
    home = tmp_path / "home"
    out = run_fresh(home, ["-m", "confroute", "route", str(tiny_artifact), "Hi!"])
    assert '"route"' in out.stdout
    assert files_under(home) == []


def test_python_api_score_leaves_nothing_in_home(tmp_path: Path, tiny_artifact: Path) -> None:
    home = tmp_path / "home"
    code = ("from confroute.runtime import Router\n"
            f"print(Router.load({str(tiny_artifact)!r}).score(['Hi!']).shape)")
    assert run_fresh(home, ["-c", code]).stdout.strip() == "(1,)"
    assert files_under(home) == []


@pytest.mark.slow  # exports a model (torch + onnx), ~10 s
def test_export_leaves_nothing_in_home(tmp_path: Path, tiny_run_dir: Path) -> None:
    home = tmp_path / "home"
    run_fresh(home, ["-m", "confroute", "export", str(tiny_run_dir), "--out",
                     str(tmp_path / "artifact")])
    assert (tmp_path / "artifact" / "router.json").is_file()
    assert files_under(home) == []


def test_with_the_opt_in_onnxruntime_does_what_it_does_alone(tmp_path: Path,
                                                             tiny_artifact: Path) -> None:
    alone, opted_in = tmp_path / "alone", tmp_path / "opted_in"
    run_fresh(alone, ["-c", "import onnxruntime"])
    run_fresh(opted_in, ["-m", "confroute", "route", str(tiny_artifact), "Hi!"],
              CONFROUTE_ALLOW_TELEMETRY="1")
    # onnxruntime 1.32 writes deviceid and onnxruntime.db here; versions without telemetry none.
    assert files_under(opted_in) == files_under(alone)


def test_a_host_that_imported_onnxruntime_first_is_warned_once(tmp_path: Path,
                                                               tiny_artifact: Path) -> None:
    load = f"Router.load({str(tiny_artifact)!r})"
    late = run_fresh(tmp_path / "late", ["-c", "import onnxruntime\n"
                                         "from confroute.runtime import Router\n"
                                         f"{load}\n{load}\n"])
    warnings = [line for line in late.stderr.splitlines() if "ORT_DISABLE_TELEMETRY=1" in line]
    assert len(warnings) == 1, late.stderr
    early = run_fresh(tmp_path / "early", ["-c", "from confroute.runtime import Router\n"
                                           "import onnxruntime\n" f"{load}\n"])
    assert "ORT_DISABLE_TELEMETRY" not in early.stderr
    chose = run_fresh(tmp_path / "chose", ["-c", "import onnxruntime\n"
                                           "from confroute.runtime import Router\n" f"{load}\n"],
                      ORT_DISABLE_TELEMETRY="1")
    assert "ORT_DISABLE_TELEMETRY" not in chose.stderr
    assert files_under(tmp_path / "chose") == []
