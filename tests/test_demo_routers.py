"""The routers `make demo` builds rank hard prompts above easy ones on the common-sense suite
(issue 26, item 4).

Both routers are trained and exported exactly as `scripts/demo.py` does (its own step list and
defaults), once for the module; each is then scored on the suite's 240 prompts: the default
router must reach the AUROC floors below, overall and between the short hard and the long easy
prompts, and the SmolLM2 router is held to the issue's goals as an expected failure. Length
alone ranks the suite at 0.50 overall and 0.00 on the second figure; the routers the demo built
before this test existed scored 0.156 / 0.143 (default) and 0.111 / 0.000 (SmolLM2), so an
inverted router fails here. The held-out set is not checked here: it is read only to report
(bench/commonsense.py), never to choose or gate anything.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from confroute.dataset.commonsense import load_suite, suite_scores

ROOT = Path(__file__).resolve().parents[1]

# The floors the default router reached when chosen (bench/results/commonsense.md: 0.603 and
# 0.425), a little below the measured figures so that float rounding across CPUs does not flip
# the test. The goals (0.95 and 0.90) are not reached; the SmolLM2 router (0.095 and
# 0.000) is checked against them as a strict expected failure, so that reaching them shows.
FLOORS = {"default": {"overall": 0.55, "short_hard_vs_long_easy": 0.35}}
GOALS = {"overall": 0.95, "short_hard_vs_long_easy": 0.90}
BUILT = ("train", "export", "train smollm2", "export smollm2")


def demo_module() -> Any:
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_routers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{router: artifact folder} of the two routers, built by the demo's own train and export
    steps with `make demo`'s defaults."""
    demo = demo_module()
    out = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name, command in demo.steps(demo.parse(["--out", str(out)])):
        if name not in BUILT:
            continue
        done = subprocess.run([sys.executable, "-m", "confroute", *command,
                               *(["--train.trainer.enable_progress_bar", "false"]
                                 if command[0] == "train" else [])],
                              capture_output=True, text=True, timeout=1800, env=env)
        assert done.returncode == 0, f"demo step {name!r}: {done.stderr[-3000:]}"
    return {"default": out / "artifact", "smollm2": out / "smollm2" / "artifact"}


def check(artifact: Path, floors: dict[str, float], router: str) -> None:
    from confroute.runtime import Router

    rows = load_suite("suite")
    result = suite_scores(rows, Router.load(artifact).score([r["prompt"] for r in rows]))
    for figure, floor in floors.items():
        assert result[figure] >= floor, (
            f"{router} router: suite AUROC {figure} {result[figure]:.3f} < {floor}; "
            f"per family {result['families']}")


@pytest.mark.slow
def test_default_demo_router_ranks_hard_above_easy(demo_routers: dict[str, Path]) -> None:
    check(demo_routers["default"], FLOORS["default"], "default")


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 26: the SmolLM2 router ranks the suite at 0.095 "
                   "overall and 0.000 short hard vs long easy, below chance")
def test_smollm2_demo_router_reaches_the_goal(demo_routers: dict[str, Path]) -> None:
    check(demo_routers["smollm2"], GOALS, "SmolLM2")
