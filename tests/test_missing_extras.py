"""Issue 22 item 4: every command that needs an extra answers with one line naming it (`confroute
train` without the train extra printed a 12-line traceback).

Each command runs in a fresh interpreter in which the extras' packages cannot be imported: a
finder placed first on sys.meta_path answers their imports with ModuleNotFoundError, as Python
does for a package that is not installed; confroute itself is untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_extras import extras

from confroute.cli import COMMANDS, EXTRAS

# Distribution -> import name where they differ.
IMPORT_NAMES = {"pytorch-lightning": "pytorch_lightning", "scikit-learn": "sklearn",
                "math-verify": "math_verify", "prometheus-client": "prometheus_client"}
BASE = {"numpy", "onnxruntime", "tokenizers", "yaml", "pydantic", "jsonargparse"}
RUN = """
import sys
from importlib.abc import MetaPathFinder

class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

BLOCKED = set(sys.argv[1].split(","))
sys.meta_path.insert(0, NotInstalled())
from confroute.cli import main
sys.exit(main(sys.argv[2:]))
"""


def modules_of(*names: str) -> set[str]:
    """Top-level import names of what the named extras install, less the base install's."""
    dists = set().union(*(extras()[name] for name in names))
    return {IMPORT_NAMES.get(d, d.replace("-", "_")) for d in dists} - BASE


def run_without(blocked: set[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN, ",".join(sorted(blocked)), *args],
                          capture_output=True, text=True, timeout=120)


def command_args(command: str, tmp: Path, artifact: Path, ladder: Path) -> list[str]:
    """Arguments that get each command past its own parsing to the work it needs an extra for."""
    table = tmp / "table.jsonl"
    table.write_text('{"prompt": "hi", "label": 1}\n')
    return {"train": ["--out", str(tmp / "run")],
            "export": [str(tmp), "--out", str(tmp / "artifact")],
            "evaluate": ["--router", str(artifact), "--truth", "routellm-judge:test",
                         "--out", str(tmp / "eval")],
            "mmlu-pro": ["--models", "[a, b]", "--prices", str(table), "--out", str(tmp / "m")],
            "tune": ["--out", str(tmp / "study")],
            "label": [str(table), "--out", str(tmp / "labels"), "--edge", "smollm2"],
            "judge": [str(table), "--out", str(tmp / "rated.parquet")],
            "serve": [str(artifact)],
            "logs": ["export", "--db", f"sqlite:///{tmp}/log.db", "--out", str(tmp / "t.jsonl")],
            "gate": ["--candidate", str(artifact), "--served", str(artifact), "--db",
                     f"sqlite:///{tmp}/log.db"],
            "drift": ["--db", f"sqlite:///{tmp}/log.db", "--artifact", str(artifact), "--out",
                      str(tmp / "drift")]}[command]


@pytest.mark.parametrize("command", sorted(EXTRAS))
def test_a_command_without_its_extra_says_so_in_one_line(command: str, tmp_path: Path,
                                                        tiny_artifact: Path,
                                                        tiny_ladder_artifact: Path) -> None:
    blocked = modules_of(*(name for name in extras() if name not in ("dev", "docs")))
    out = run_without(blocked, command, *command_args(command, tmp_path, tiny_artifact,
                                                              tiny_ladder_artifact))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    named = lines[0].split("pip install 'confroute[", 1)[1].split("]", 1)[0]
    missing = lines[0].split("Python package '", 1)[1].split("'", 1)[0]
    assert missing in modules_of(named), lines[0]  # the extra named does install it


def test_serve_without_only_its_extra_names_serve(tmp_path: Path, tiny_artifact: Path) -> None:
    out = run_without(modules_of("serve") - modules_of("train"), "serve", str(tiny_artifact))
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "pip install 'confroute[serve]'" in out.stderr


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - set(EXTRAS)))
def test_base_commands_run_without_any_extra(command: str, tmp_path: Path,
                                             tiny_artifact: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("hi\nprove it\n")
    args = {"route": [str(tiny_artifact), "hi"], "datasets": [],
            "calibrate": [str(tiny_artifact), "--cloud_fraction", "0.5", "--file",
                          str(prompts)]}[command]
    everything = modules_of(*(name for name in extras() if name not in ("dev", "docs")))
    out = run_without(everything, command, *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
