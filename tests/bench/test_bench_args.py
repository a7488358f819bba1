"""The sized bench scripts' shared command line (bench/bench_args.py) answers bad input with one
line and exit status 2, never a traceback: a seed numpy cannot take, a data folder that is not
the data set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script, args, message", [
    ("labels.py", ["--seed", "-1"],
     "argument --seed: must be a whole number in [0, 4294967295]; found '-1'"),
    ("irt.py", ["--seed", "4294967296"], "argument --seed: must be a whole number in"),
    ("quality.py", ["--quick", "--routellm-dir", "{tmp}"], "has no evals/ folder"),
])
def test_bad_input_is_one_line_without_traceback(script: str, args: list[str], message: str,
                                                 tmp_path: Path) -> None:
    args = [a.format(tmp=tmp_path) for a in args]
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args,
                           "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith(f"{script}: error:"), done.stderr
    assert not (tmp_path / "out").exists()
