"""bench/simulate.py --quick end to end: 300 MMLU-Pro requests through the service to the
upstream doubles, every one logged and shadow-judged, routers retrained from the log with the
project's commands, and the gate run on the held-out logged requests. At this size the gain's
CI is wide, so the test asserts what must hold at any size: every request logged and judged, the
gate scoring the newest fifth, and the opposite-label candidate refused with its reason (the
promotion of the retrained router is measured at full size: bench/results/simulate.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "traffic"))
from doubles import data_dir  # noqa: E402


@pytest.mark.slow
def test_quick_simulation_logs_judges_retrains_and_refuses_the_worse_candidate() -> None:
    if data_dir("CONFROUTE_MMLU_PRO_DIR", "mmlu_pro") is None:
        pytest.skip("MMLU-Pro outcomes not found: set CONFROUTE_MMLU_PRO_DIR")
    done = subprocess.run([sys.executable, str(ROOT / "bench/simulate.py"), "--quick"],
                          capture_output=True, text=True, timeout=900, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CPU: " in done.stdout and "| opposite labels | 60 |" in done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["requests"] == result["judged"] == 300
    for name in ("retrained", "worse"):
        ci = result[name]["gain_ci"]
        assert result[name]["rows"] == 60 and ci["low"] <= result[name]["gain"] <= ci["high"]
    assert not result["worse"]["promoted"] and result["worse"]["reasons"]
