"""bench/latency.py end to end at a tiny size: every backend row and the CPU line are printed
(no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_latency_bench_prints_every_backend() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench/latency.py"), "--repeats", "3",
                           "--batch-repeats", "1"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "avx2=" in done.stdout
    for backend in ("torch eager", "onnx fp32", "onnx int8"):
        assert f"| {backend} |" in done.stdout
