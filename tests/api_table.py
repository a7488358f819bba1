"""The public Python API as a table, and hostile arguments by kind (issue 23 item 4).

`surface(ctx)` lists every public callable (docs/api/index.md names the same set; a test
holds them equal) with a valid call and the kind of each argument. `hostile_calls(ctx)` yields,
for each callable and argument, the call with that argument replaced by each hostile value of
its kind; each must raise a ConfrouteError whose message names the argument. Shared by
tests/test_api_arguments.py and bench/bad_inputs.py (its API section).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

HUGE = 10 ** 400  # an int no float holds


@dataclasses.dataclass
class Context:
    """What the valid calls need: a loaded router, its artifact folder, and scratch files."""

    router: Any
    artifact: Path
    folder: Path  # a writable empty folder

    @property
    def missing(self) -> Path:
        return self.folder / "does-not-exist"

    @property
    def a_file(self) -> Path:
        path = self.folder / "a-file.txt"
        path.write_text("not a folder\n")
        return path

    @property
    def not_utf8(self) -> Path:
        path = self.folder / "latin1.yaml"
        path.write_bytes("m: {input_per_mtok: 1, output_per_mtok: 2} # caf\xe9\n"
                         .encode("latin-1"))
        return path


def hostile(kind: str, ctx: Context) -> list[Any]:
    """Hostile values of one kind of argument: wrong types, NaN, infinities, negatives, huge,
    empty, bools for numbers, missing paths, files for folders, non-UTF-8 files."""
    nan, inf = math.nan, math.inf
    kinds: dict[str, list[Any]] = {
        "fraction": [True, "0.5", nan, inf, -inf, -0.1, 1.5, HUGE, [0.5], np.float64(nan)],
        "fraction?": [True, "0.5", nan, inf, -0.1, 1.5, HUGE, [0.5]],
        ">=0": [True, "1", None, nan, inf, -inf, -1.0, HUGE, [1.0], np.float32(-1)],
        ">=0?": [True, "1", nan, inf, -1.0, HUGE, [1.0]],
        "real": [True, "1", None, nan, inf, -inf, HUGE, [1.0]],
        "t": [True, "0.5", None, nan, inf, -0.1, 2.0, HUGE],
        "count": [True, 1.5, "2", nan, inf, 0, -1, HUGE, None],
        "threads": [True, 1.5, "2", nan, -1, HUGE, 10 ** 6],
        "int": [True, 1.5, "2", nan, None, HUGE],
        "folder": ["", "   ", b"bytes", 3, None, ctx.missing, ctx.a_file, "a\0b"],
        "folder?": ["", "   ", b"bytes", 3, ctx.missing, ctx.a_file, "a\0b"],
        "path": ["", "   ", b"bytes", 3, None, "a\0b"],
        "file": ["", b"bytes", 3, None, ctx.missing, ctx.folder],
        "out": ["", b"bytes", 3, None, "a\0b", ctx.a_file],
        "prices": [3, None, "", ctx.missing, ctx.folder, ctx.not_utf8, [1, 2],
                   {"m": {"input_per_mtok": nan, "output_per_mtok": 1}}],
        "text": ["", "   ", 3, None, b"x", ["a"]],
        "names": ["ab", [], ["a", "a"], [1, 2], None, 3, [""]],
        "choice": ["x", 3, None, True, ""],
        "choice?": ["x", 3, True, ""],
        "prompts": [None, {"prompt": "hi"}, [None], [1.5], [b"hi"], ["bad \ud83d"], 3],
        "texts": [None, {"prompt": "hi"}, [None], [1.5], [b"hi"], 3, "ab"],
        "prompt": [None, 1.5, b"hi", "bad \ud83d", {"prompt": "hi"}],
        "probs": [None, "ab", [[nan, 0.5]], [[inf, 0.5]], [[True, False]], [], [[1.5, 0.2]],
                  [[-0.1, 0.5]], [[0.5]], [["a", "b"]]],
        "probs1": [None, "ab", [nan, 0.5], [inf, 0.5], [True, False], [], [1.5, 0.2], [0.5]],
        "costs": [None, "ab", [[nan, 0.5]], [[inf, 0.5]], [[-1.0, 0.5]], [[True, False]],
                  [[0.1]]],
        "costs1": ["ab", [nan, 0.5], [inf, 0.5], [-1.0, 0.5], [True, False], [0.1]],
        "shares": ["ab", [nan, 1.0], [inf, 0.0], [-0.5, 1.5], [0.5], [True, False],
                   [0.2, 0.2]],
        "thresholds": ["ab", [nan, 0.5], [0.5], [True, False], None],
        "thresholds?": [[0.1, 0.2], {"x": 0.5}, {"m": nan}, "ab", 3],
        "model?": ["x", 3, True, ""],
        "mapping": [None, 3, "ab", [1, 2]],
        "mapping?": [3, "ab", [1, 2]],
        "policy": [None, "threshold", 3, {"models": ["a", "b"]}],
        "manifest": [None, 3, "ab", {}, {"files": 3}],
        "router": [None, 3, "ab"],
        "config": [None, 3, "ab", {"data": {}}],
        "config?": [3, "ab", {"data": {}}],
    }
    return kinds[kind]


Call = Callable[..., Any]
Entry = tuple[str, Call, dict[str, Any], dict[str, str]]


def surface(ctx: Context) -> list[Entry]:
    """(public name, callable, valid keyword arguments, {argument: kind}) for each public
    callable; replacing any one argument by a hostile value of its kind must raise."""
    from confroute import artifact, calibration, policy
    from confroute.runtime import Router

    r, pol = ctx.router, ctx.router.policy
    k = len(r.models)
    probs, costs = np.full((4, k), 0.5), np.full((4, k), 0.001)
    shares = [1.0 / k] * k
    p1 = {"probs": probs}
    manifest = artifact.read_manifest(ctx.artifact)
    return [
        ("Router.load", Router.load, {"directory": ctx.artifact},
         {"directory": "folder", "variant": "choice", "threads": "threads",
          "batch_size": "count"}),
        ("Router.score", r.score, {"prompts": ["a"]}, {"prompts": "prompts"}),
        ("Router.texts", r.texts, {"prompts": ["a"]}, {"prompts": "prompts"}),
        ("Router.logits", r.logits, {"prompts": ["a"]}, {"prompts": "prompts"}),
        ("Router.adequacy", r.adequacy, {"prompts": ["a"]}, {"prompts": "prompts"}),
        ("Router.costs", r.costs, {"prompts": ["a"]}, {"prompts": "prompts"}),
        ("Router.choose", r.choose, {"prompts": ["a"]}, {"prompts": "prompts"}),
        ("Router.decide", r.decide, {"prompt": "a"},
         {"prompt": "prompt", "threshold": "fraction?", "thresholds": "thresholds?",
          "model": "model?"}),
        ("Router.decide_batch", r.decide_batch, {"prompts": ["a"]},
         {"prompts": "prompts", "threshold": "fraction?", "thresholds": "thresholds?",
          "model": "model?"}),
        ("Router.calibration", r.calibration, {"prompts": ["a", "b"], "shares": shares},
         {"prompts": "prompts", "shares": "shares", "rule": "choice?"}),
        ("Router.calibrate", r.calibrate, {"prompts": ["a", "b"], "shares": shares},
         {"prompts": "prompts", "shares": "shares"}),
        ("policy.Policy", policy.Policy, {"models": r.models, "thresholds": [0.5] * k},
         {"models": "names", "thresholds": "thresholds", "rule": "choice",
          "lambda_per_usd": ">=0", "cut": "fraction?"}),
        ("Policy.decide", pol.decide, {"probs": [0.5] * k},
         {"probs": "probs1", "score": "fraction?", "model": "model?",
          "thresholds": "thresholds?"}),
        ("Policy.route", pol.route, p1, {"probs": "probs"}),
        ("policy.choose", policy.choose, {**p1, "thresholds": [0.5] * k},
         {"probs": "probs", "thresholds": "thresholds", "cut": "fraction?"}),
        ("policy.choose_utility", policy.choose_utility, {**p1, "costs": costs, "lam": 1.0},
         {"probs": "probs", "costs": "costs", "lam": "real"}),
        ("policy.check_threshold", policy.check_threshold, {"value": 0.5}, {"value": "fraction"}),
        ("policy.check_lambda", policy.check_lambda, {"value": 0.5}, {"value": ">=0"}),
        ("calibration.calibrate", calibration.calibrate,
         {"policy": pol, **p1, "shares": shares},
         {"policy": "policy", "probs": "probs", "shares": "shares", "rule": "choice?"}),
        ("calibration.calibrate_cost", calibration.calibrate_cost,
         {**p1, "costs": costs, "target": 0.01},
         {"probs": "probs", "costs": "costs", "target": ">=0"}),
        ("calibration.calibrate_lambda", calibration.calibrate_lambda,
         {**p1, "costs": costs, "target": 0.01},
         {"probs": "probs", "costs": "costs", "target": ">=0"}),
        ("calibration.calibrate_shares", calibration.calibrate_shares,
         {**p1, "shares": shares}, {"probs": "probs", "shares": "shares"}),
        ("calibration.check_fraction", calibration.check_fraction, {"value": 0.5},
         {"value": "fraction"}),
        ("artifact.read_manifest", artifact.read_manifest, {"directory": ctx.artifact},
         {"directory": "folder"}),
        ("artifact.write_manifest", artifact.write_manifest,
         {"directory": ctx.artifact, "manifest": manifest},
         {"directory": "folder", "manifest": "manifest"}),
        ("artifact.validate", artifact.validate,
         {"data": manifest, "path": ctx.artifact / "router.json"}, {"path": "path"}),
        ("artifact.routing_section", artifact.routing_section, {"manifest": manifest},
         {"manifest": "manifest"}),
        ("artifact.set_policy", artifact.set_policy,
         {"directory": ctx.artifact, "policy": pol},
         {"directory": "folder", "policy": "policy"}),
        ("artifact.verify_files", artifact.verify_files,
         {"directory": ctx.artifact, "manifest": manifest, "names": ["tokenizer.json"]},
         {"directory": "folder", "manifest": "manifest", "names": "names"}),
        ("artifact.sha256_file", artifact.sha256_file,
         {"path": ctx.artifact / "tokenizer.json"}, {"path": "file"}),
        *_data_entries(ctx),
        *_training_entries(ctx),
        *_cascade_entries(ctx),
    ]


def _cascade_entries(ctx: Context) -> list[Entry]:
    from confroute import cascade
    from confroute.cascade_calibration import calibrate_cascade, write_cascade

    u = cascade.Uncertainty.unfitted("logprob")
    pol = cascade.CascadePolicy(0.8, 0.5, u)
    ev = [cascade.EdgeEvidence(mean_logprob=-0.1 * (i + 1)) for i in range(4)]
    scores = [0.1, 0.4, 0.6, 0.9]
    return [
        ("cascade.check_measure", cascade.check_measure, {"value": "logprob"},
         {"value": "choice"}),
        ("cascade.Uncertainty", cascade.Uncertainty, {"measure": "logprob", "weights": (0, 1)},
         {"measure": "choice", "weights": "thresholds", "bias": "real"}),
        ("cascade.CascadePolicy", cascade.CascadePolicy, {"t1": 0.8, "t2": 0.5,
                                                          "uncertainty": u},
         {"t1": "t", "t2": "t", "uncertainty": "policy"}),
        ("CascadePolicy.first", pol.first, {"score": 0.5}, {"score": "fraction"}),
        ("CascadePolicy.second", pol.second, {"score": 0.5, "evidence": ev[0]},
         {"score": "fraction", "evidence": "policy"}),
        ("cascade.fit_uncertainty", cascade.fit_uncertainty,
         {"measure": "logprob", "scores": scores, "evidence": ev, "edge_wrong": [0, 1, 0, 1]},
         {"measure": "choice", "scores": "probs1", "evidence": "names", "edge_wrong": "probs1",
          "l2": ">=0"}),
        ("cascade_calibration.calibrate_cascade", calibrate_cascade,
         {"uncertainty": u, "scores": scores, "evidence": ev, "cloud_share": 0.5,
          "direct_share": 0.25},
         {"uncertainty": "policy", "scores": "probs1", "evidence": "names",
          "cloud_share": "fraction", "direct_share": "fraction?"}),
        ("cascade_calibration.write_cascade", write_cascade,
         {"directory": ctx.artifact, "policy": pol}, {"directory": "folder", "policy": "policy"}),
    ]


def _data_entries(ctx: Context) -> list[Entry]:
    from confroute.dataset import mmlu_pro, ratings

    table = ctx.folder / "ratings.csv"
    table.write_text("prompt,a,b\nhi,1,0\nho,0,1\n")
    prices = {"a": {"input_per_mtok": 1, "output_per_mtok": 2},
              "b": {"input_per_mtok": 3, "output_per_mtok": 4}}
    small = ratings.read_ratings(table, prices)
    return [
        ("ratings.read_ratings", ratings.read_ratings, {"source": table, "prices": prices},
         {"source": "file", "prices": "prices"}),
        ("ratings.parse_prices", ratings.parse_prices, {"prices": prices}, {"prices": "prices"}),
        ("ratings.estimate_tokens", ratings.estimate_tokens, {"texts": ["hi"]},
         {"texts": "texts"}),
        ("mmlu_pro.load", mmlu_pro.load, {"models": ["a", "b"], "prices": prices,
                                          "root": ctx.folder},
         {"models": "names", "prices": "prices", "root": "folder?"}),
        ("mmlu_pro.available_models", mmlu_pro.available_models, {"root": ctx.folder},
         {"root": "folder?"}),
        ("mmlu_pro.split", mmlu_pro.split, {"table": small},
         {"seed": "int", "test_fraction": "fraction", "val_fraction": "fraction"}),
        ("mmlu_pro.assign_splits", mmlu_pro.assign_splits, {"ids": ["q1", "q2"]},
         {"ids": "names", "seed": "int", "test_fraction": "fraction",
          "val_fraction": "fraction"}),
        ("mmlu_pro.format_prompt", mmlu_pro.format_prompt,
         {"question": "Why?", "options": ["yes", "no"]},
         {"question": "text", "options": "names"}),
    ]


def _training_entries(ctx: Context) -> list[Entry]:
    from confroute.config import ExportConfig, RunConfig
    from confroute.export import export
    from confroute.integrations.litellm import use_confroute
    from confroute.serve import create_app, load_settings
    from confroute.training.fit import fit

    return [
        ("export.export", export, {"run_dir": ctx.folder, "out_dir": ctx.folder / "art",
                                   "cfg": ExportConfig()},
         {"run_dir": "folder", "out_dir": "out", "cfg": "config?"}),
        ("training.fit.fit", fit, {"cfg": RunConfig(), "out_dir": ctx.folder / "run"},
         {"cfg": "config", "out_dir": "out"}),
        ("serve.create_app", create_app, {"router_or_dir": ctx.router},
         {"router_or_dir": "router", "settings": "config?", "environ": "mapping?"}),
        ("serve.load_settings", load_settings, {}, {"values": "mapping?",
                                                    "environ": "mapping?"}),
        ("integrations.litellm.use_confroute", use_confroute,
         {"llm_router": None, "artifact": ctx.router},
         {"artifact": "router", "models": "mapping?", "alias": "text"}),
    ]


def hostile_calls(ctx: Context) -> Iterator[tuple[str, str, Any, Callable[[], Any]]]:
    """(public name, argument, hostile value, call) for every entry, argument and value."""
    for name, fn, valid, kinds in surface(ctx):
        for arg, kind in kinds.items():
            for value in hostile(kind, ctx):
                yield name, arg, value, _bind(fn, {**valid, arg: value})


def _bind(fn: Call, kwargs: dict[str, Any]) -> Callable[[], Any]:
    return lambda: fn(**kwargs)


SAID = {"prompts": "prompt", "texts": "text", "policy.check_threshold.value": "threshold",
        "policy.check_lambda.value": "lambda_per_usd",
        "calibration.check_fraction.value": "cloud_fraction",
        "cascade.check_measure.value": "measure"}
"""The word an error must hold for an argument when it is not the argument's own name (a
prompt's error names its position: "prompt 3 is ...")."""


def said(name: str, arg: str) -> str:
    """The word the error for `arg` of `name` must hold."""
    return SAID.get(f"{name}.{arg}", SAID.get(arg, arg))
