"""`make demo`: train -> export -> route -> evaluate on the bundled defaults, then the SmolLM2
edge-confidence router, each step timed; the timings are printed at the end, so what a README or
an issue quotes is what the command measured on that machine.

    python scripts/demo.py --steps 200 --sample 1000 [--preset micro] [--out runs/demo]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time

EASY, TRAIN, PROOF = ("What is 12 + 30?",
                      "A train leaves at 3pm at 60 km/h and another at 4pm at 80 km/h; when does "
                      "the second catch up?", "Prove that the product of two odd integers is odd.")

# Broad supervision (issue 26), chosen on the common-sense suite (bench/results/commonsense.md):
# the default router adds the 23-model MMLU-Pro difficulty to its pair's outcomes (suite AUROC
# 0.136 -> 0.603, APGR on its benchmark 0.603 -> 0.625). The SmolLM2 router keeps its own data:
# adding broad-smollm2 made it rank the suite worse (0.095 -> 0.048).
DEFAULT_MIX = ["--data.mix", "[mmlu-pro-difficulty]"]


def steps(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(name, confroute arguments) of each step, in order."""
    out, smollm2 = args.out, f"{args.out}/smollm2"
    preset = ["--preset", args.preset] if args.preset else []
    return [
        ("train", ["train", "--out", out, *preset, "--train.max_steps", str(args.steps),
                   "--train.freeze_layers", str(args.freeze), *DEFAULT_MIX, "--overwrite"]),
        ("export", ["export", out, "--out", f"{out}/artifact"]),
        ("route", ["route", f"{out}/artifact", EASY, TRAIN, PROOF]),
        ("evaluate", ["evaluate", "--router", f"{out}/artifact", "--truth",
                      "routellm-judge:test", "--out", f"{out}/evaluation", "--bootstrap", "200",
                      "--sample", str(args.sample)]),
        # An edge-confidence router from confroute's own uncertainty labels (SmolLM2-135M, SE).
        ("train smollm2", ["train", "--out", smollm2, "--data.source", "smollm2-uncertainty",
                           "--train.max_epochs", "1", "--overwrite"]),
        ("export smollm2", ["export", smollm2, "--out", f"{smollm2}/artifact"]),
        ("route smollm2", ["route", f"{smollm2}/artifact", "What is 7 + 8?",
                           "What is 487 * 36?"]),
    ]


def duration(seconds: float) -> str:
    """`75.2` -> "1 min 15 s"; under a minute "9.4 s"."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {round(seconds % 60):d} s"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The demo's settings (`make demo`'s defaults unless `argv` names others); the test of the
    demo's routers (tests/test_demo_routers.py) builds them from these same defaults."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps of the router")
    parser.add_argument("--freeze", type=int, default=0, help="encoder layers to freeze")
    parser.add_argument("--sample", type=int, default=1000, help="prompts to evaluate on")
    parser.add_argument("--preset", default="", help="a training preset (micro, full)")
    parser.add_argument("--out", default="runs/demo", help="the run folder")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    confroute = [sys.executable, "-m", "confroute"]
    timings: list[tuple[str, float]] = []
    for name, command in steps(args):
        print(f"\n$ confroute {shlex.join(command)}", flush=True)
        start = time.perf_counter()
        done = subprocess.run([*confroute, *command], env=os.environ.copy())
        timings.append((name, time.perf_counter() - start))
        if done.returncode:
            print(f"demo: step '{name}' failed (exit {done.returncode})", file=sys.stderr)
            return done.returncode
    total = sum(seconds for _, seconds in timings)
    print(f"\ndemo timings ({os.cpu_count()} CPU cores): "
          + ", ".join(f"{name} {duration(s)}" for name, s in timings)
          + f"; total {duration(total)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
