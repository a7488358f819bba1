"""The traffic loop end to end on real outcomes: replay, log, shadow-judge, retrain, gate.

A traffic mix the served router was not trained on, MMLU-Pro questions outside its MMLU part
(`src` not `ori_mmlu*`, so no prompt overlaps routellm-judge's MMLU rows), goes through the
service app (in-process ASGI) with the decision log on (SQLite in a temporary folder) and
shadow judging on every request (fraction 1, budget far above the run's spend). The upstreams
are the doubles of `tests/traffic/doubles.py`: edge = Llama-3.1-8B-Instruct and cloud =
Llama-3.1-70B-Instruct, each answering right exactly when the real model did (MMLU-Pro's
published outcomes), and a judge that knows the gold answer, all over real HTTP on loopback.

Then, with the project's own commands (`confroute ...` as subprocesses):
1. `confroute train --preset micro --data.source sqlite:///...` on the log (the older rows by
   decision time; the newest 20% are held out), `confroute export`;
2. a deliberately worse candidate: `confroute logs export`, each train row's edge and cloud
   ratings swapped (the opposite labels), trained and exported the same way;
3. `confroute gate` of the worse candidate (must be refused), then of the retrained one (must
   be promoted), each against the served link on the held-out logged requests.

The served router is a micro router trained on the bundled `routellm-judge` (edge = Mixtral,
cloud = GPT-4 on GSM8K, MMLU, MT-Bench) for the same run, so the figures do not depend on a
demo artifact being present. Prints a table naming the CPU and writes
bench/results/simulate.md (`--quick`: a small N, the served router on fewer rows, no file).

    python bench/simulate.py            # 2,500 requests: ~2,000 train, 500 held out
    python bench/simulate.py --quick    # 300 requests (the slow test runs this)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "traffic"), str(ROOT / "tests" / "serve"), str(ROOT),
                str(ROOT / "bench")]

import doubles  # noqa: E402
from gemm import cpu_summary  # noqa: E402  (the CPU line every bench table prints)
from upstream import echo_app, serve_in_thread  # noqa: E402

EDGE, CLOUD = "Meta-Llama-3.1-8B-Instruct", "Meta-Llama-3.1-70B-Instruct"
RESULTS = ROOT / "bench" / "results" / "simulate.md"


def traffic(n: int, seed: int) -> doubles.KnownOutcomes:
    """`n` MMLU-Pro questions outside its MMLU part, in a seeded random order."""
    import pandas as pd

    known = doubles.mmlu_pro([EDGE, CLOUD])
    folder = doubles.data_dir("CONFROUTE_MMLU_PRO_DIR", "mmlu_pro")
    assert folder is not None
    src = pd.read_parquet(folder / "questions.parquet", columns=["question_id", "src"])
    fresh = {f"mmlu_pro/{q}" for q, s in zip(src["question_id"], src["src"], strict=True)
             if not str(s).startswith("ori_mmlu")}
    index = np.array([i for i, q in enumerate(known.ids) if q in fresh])
    return known.subset(np.random.default_rng(seed).permutation(index)[:n])


def confroute(*args: str) -> str:
    """Run one `confroute` command (this checkout's), returning its stdout; raises on failure."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "confroute", *args], capture_output=True,
                          text=True, env=env, check=False)
    if done.returncode not in (0, 1) or (done.returncode == 1 and args[0] != "gate"):
        raise RuntimeError(f"confroute {' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return done.stdout


CANDIDATES = ("micro", "default")
"""Router families the candidates can be trained as: `--preset micro` (the static table), or
confroute's default router (MiniLM's first layers, what `make demo` trains)."""


def train_and_export(folder: Path, source: str, *extra: str, family: str = "micro") -> Path:
    """`confroute train` (`--preset micro`, or the default router) on `source`, then export
    (fp32 only: the gate scores fp32, and int8 calibration would double the CPU time)."""
    preset = ["--preset", "micro"] if family == "micro" else []
    confroute("train", *preset, "--data.source", source, "--out", str(folder / "run"), *extra)
    confroute("export", str(folder / "run"), "--out", str(folder / "artifact"),
              "--int8", "false")
    return folder / "artifact"


def replay(router_dir: Path, known: doubles.KnownOutcomes, url: str,
           share: float) -> dict[str, Any]:
    """Every prompt through the service, logged and shadow-judged; the run's counts. The
    served threshold sends `share` of the first tenth of the traffic up (a deployment
    calibrating its cloud share on its first requests)."""
    from starlette.testclient import TestClient

    from confroute.runtime import Router
    from confroute.serve import ServeSettings, UpstreamSettings, create_app
    from confroute.traffic.log import LogSettings
    from confroute.traffic.shadow import ShadowSettings

    router = Router.load(router_dir)
    first = router.score(known.prompts[:max(10, len(known.prompts) // 10)])
    threshold = float(np.quantile(first, 1.0 - share))
    apps = {"edge": echo_app("edge", answer=doubles.model_answerer(known, EDGE)),
            "cloud": echo_app("cloud", answer=doubles.model_answerer(known, CLOUD)),
            "judge": echo_app("judge", answer=doubles.judge_answerer(known))}
    with serve_in_thread(apps["edge"]) as edge, serve_in_thread(apps["cloud"]) as cloud, \
            serve_in_thread(apps["judge"]) as judge:
        settings = ServeSettings(
            upstreams={"edge": UpstreamSettings(edge + "/v1", EDGE),
                       "cloud": UpstreamSettings(cloud + "/v1", CLOUD)},
            log=LogSettings(url=url, text=True, flush_interval_s=0.05),
            shadow=ShadowSettings(fraction=1.0, requests_per_minute=1_000_000,
                                  usd_per_day=1e6, seed=0),
            judge=UpstreamSettings(judge + "/v1", "judge-double"), read_timeout_s=30.0,
            threshold=threshold)
        app = create_app(router, settings, environ={})
        start = time.perf_counter()
        with TestClient(app) as client:
            chosen = [route(client, prompt) for prompt in known.prompts]
            judged = wait_for_judging(client, len(known.prompts))
        seconds = time.perf_counter() - start
    return {"requests": len(chosen), "sent_up": sum(c == "cloud" for c in chosen),
            "threshold": threshold, "share": share,
            "judged": judged, "seconds": seconds}


def route(client: Any, prompt: str) -> str:
    """One chat request; the router's name of the model that answered (x-confroute-route)."""
    response = client.post("/v1/chat/completions", json={
        "model": "confroute", "messages": [{"role": "user", "content": prompt}]})
    if response.status_code != 200:
        raise RuntimeError(f"the service answered {response.status_code}: {response.text[:300]}")
    return response.headers.get("x-confroute-route", "")


def wait_for_judging(client: Any, n: int, limit_s: float = 600.0) -> int:
    """Block until the shadow judge has verdicts for `n` requests (the client never waited)."""
    deadline = time.monotonic() + limit_s
    while (judged := metric(client.get("/metrics").text, "confroute_shadow_judged")) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {judged:.0f} of {n} requests judged in {limit_s:.0f} s")
        time.sleep(0.2)
    return int(judged)


def metric(text: str, name: str) -> float:
    """The value of one unlabelled sample of Prometheus text (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def flipped_table(folder: Path, url: str) -> Path:
    """The log's table with each train row's edge and cloud ratings swapped: the opposite
    labels, so a router trained on it sends up the prompts the edge answers well."""
    import pandas as pd

    out = folder / "log.parquet"
    confroute("logs", "export", "--db", url, "--out", str(out))
    table = pd.read_parquet(out)
    train = table["split"].to_numpy() == "train"
    for a, b in (("rating_edge", "rating_cloud"), ("edge", "cloud")):
        if a in table.columns and b in table.columns:
            table.loc[train, [a, b]] = table.loc[train, [b, a]].to_numpy()
    table.to_parquet(folder / "flipped.parquet")
    return folder / "flipped.parquet"


def gate(candidate: Path, link: Path, url: str, out: Path, min_rows: int) -> dict[str, Any]:
    confroute("gate", "--candidate", str(candidate), "--served", str(link), "--db", url,
              "--out", str(out), "--min_rows", str(min_rows), "--bootstrap", "2000")
    return json.loads(out.read_text())


def run(n: int, seed: int, quick: bool, work: Path, share: float = 0.25,
        candidates: str = "micro") -> dict[str, Any]:
    """The whole loop in `work`; every figure of the table. `candidates`: the family the
    retrained and the worse candidate are trained as (see CANDIDATES)."""
    known = traffic(n, seed)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    extra = ["--data.max_rows", "3000", "--train.max_epochs", "2"] if quick else []
    served_dir = train_and_export(work / "served", "routellm-judge", *extra)
    timings["train served"] = time.perf_counter() - start
    url = f"sqlite:///{work / 'decisions.db'}"
    counts = replay(served_dir, known, url, share)
    timings["replay"] = counts["seconds"]
    start = time.perf_counter()
    retrained = train_and_export(work / "retrained", url, family=candidates)
    worse = train_and_export(work / "worse", str(flipped_table(work, url)), family=candidates)
    timings["train candidates"] = time.perf_counter() - start
    link = work / "served-link"
    os.symlink(served_dir.resolve(), link)
    min_rows = 40 if quick else 100
    start = time.perf_counter()
    refused = gate(worse, link, url, work / "gate-worse.json", min_rows)
    promoted = gate(retrained, link, url, work / "gate-retrained.json", min_rows)
    timings["gate"] = time.perf_counter() - start
    return {"n": n, "counts": counts, "worse": refused, "retrained": promoted,
            "candidates": candidates,
            "timings": timings, "link_now": str(Path(os.readlink(link)).name
                                                 if link.is_symlink() else link),
            "promoted_to": str(Path(os.path.realpath(link)).parent.name)}


def table(result: dict[str, Any]) -> str:
    """The markdown table of both gate decisions."""
    lines = ["| candidate | held-out rows | current cloud share | candidate | served | prior | "
             "random | oracle | gain [95% CI] | candidate sends up | promoted |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, key in (("retrained on the log", "retrained"), ("opposite labels", "worse")):
        r = result[key]
        q, ci = r["quality_at_current_share"], r["gain_ci"]
        up = r["as_calibrated"]["candidate"]["cloud_share"]
        lines.append(
            f"| {name} | {r['rows']} | {r['current_cloud_share']:.1%} | {q['candidate']:.4f} | "
            f"{q['served']:.4f} | {q['prior']:.4f} | {q['random']:.4f} | {q['oracle']:.4f} | "
            f"{r['gain']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}] | {up:.1%} | "
            f"{'yes' if r['promoted'] else 'no: ' + '; '.join(r['reasons'])} |")
    return "\n".join(lines)


CANDIDATE_NAMES = {"micro": "micro router (`--preset micro`)",
                   "default": "default router (MiniLM's first layers, no preset)"}


def report(result: dict[str, Any]) -> str:
    c, t = result["counts"], result["timings"]
    head = (f"CPU: {cpu_summary()} ({os.cpu_count()} cores). Traffic: {c['requests']} MMLU-Pro "
            f"requests outside its MMLU part (edge = {EDGE}, cloud = {CLOUD}, real per-question "
            f"outcomes); the served micro router (trained on routellm-judge; threshold "
            f"{c['threshold']:.4f}, the score quantile sending {c['share']:.0%} of the first "
            f"tenth of the traffic up) sent "
            f"{c['sent_up']} ({c['sent_up'] / c['requests']:.1%}) to the cloud; "
            f"{c['judged']} shadow-judged. Quality = the mean logged rating of the answer each "
            f"router picks at the current cloud share (judge verdicts: the winner 1, the loser "
            f"0, a tie, both right or both wrong, 1 for both). Candidates trained as the "
            f"{CANDIDATE_NAMES[result['candidates']]}.")
    times = ", ".join(f"{k} {v:.0f} s" for k, v in t.items())
    return f"{head}\n\n{table(result)}\n\nTimings: {times}.\n"


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The last line printed (JSON): the run's counts and both gate decisions."""
    keys = ("rows", "current_cloud_share", "gain", "gain_ci", "promoted", "reasons")
    return {**{k: result["counts"][k] for k in ("requests", "sent_up", "judged")},
            **{name: {k: result[name][k] for k in keys} for name in ("retrained", "worse")}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 requests; writes no file")
    parser.add_argument("--n", type=int, default=None, help="requests to replay")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cloud-share", type=float, default=0.25,
                        help="the served router's target cloud share, calibrated on the first "
                             "tenth of the traffic (MMLU-Pro's 8B edge loses to the 70B on "
                             "about a quarter of the questions)")
    parser.add_argument("--candidates", choices=CANDIDATES, default="micro",
                        help="the family the candidates are trained as: micro (the static "
                             "table, as the served router) or default (MiniLM's first layers)")
    args = parser.parse_args(argv)
    n = args.n or (300 if args.quick else 2500)
    with tempfile.TemporaryDirectory(prefix="confroute-simulate-") as work:
        result = run(n, args.seed, args.quick, Path(work), args.cloud_share, args.candidates)
    text = report(result)
    print(text)
    if not args.quick:
        results = RESULTS if args.candidates == "micro" else \
            RESULTS.with_name(f"simulate-{args.candidates}.md")
        command = "python bench/simulate.py" + (
            "" if args.candidates == "micro" else f" --candidates {args.candidates}")
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(f"# The traffic loop on real outcomes (`{command}`)\n\n" + text)
    print(json.dumps(summary(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
