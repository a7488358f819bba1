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


def test_router_overhead_prints_each_call(tiny_artifact: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench/latency.py"), "--router",
                           str(tiny_artifact), "--repeats", "5", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    for call in ("Router.score([prompt])", "Router.decide(prompt)", "Policy.decide(probs)"):
        assert f"| {call} |" in done.stdout


@pytest.mark.slow
def test_token_counts_prints_each_estimate_against_each_tokenizer() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench/token_counts.py"), "--per-set",
                           "3"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    for row in ("| chars / 4 | gpt-4o |", "| encoder (MiniLM) | gpt-4 |"):
        assert row in done.stdout
