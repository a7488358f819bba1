"""Bad inputs of issue 14 items 4, 5 and 8 through the Python API, each classed as a clear
ConfrouteError, a traceback (any other exception) or silently accepted.

    PYTHONPATH=. python scripts/bad_inputs_artifact_data.py ARTIFACT_DIR RUN_DIR

ARTIFACT_DIR and RUN_DIR: any `confroute export` artifact and the run it came from (copies are
edited, never the originals).
"""
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

from confroute.errors import ConfrouteError

if len(sys.argv) != 3 or not all(Path(a).is_dir() for a in sys.argv[1:]):
    sys.exit(f"usage: python {sys.argv[0]} ARTIFACT_DIR RUN_DIR (two existing folders)\n"
             + (__doc__ or ""))
ART, RUN = Path(sys.argv[1]), Path(sys.argv[2])
results = []


def attempt(name, fn):
    try:
        fn()
        results.append((name, "accepted"))
    except ConfrouteError:
        results.append((name, "clear error"))
    except Exception as exc:
        results.append((name, f"traceback ({type(exc).__name__})"))


def manifest_case(path, value):
    def run():
        from confroute.runtime import Router
        tmp = Path(tempfile.mkdtemp()) / "a"
        shutil.copytree(ART, tmp)
        m = json.loads((tmp / "router.json").read_text())
        node = m
        *parents, last = path.split(".")
        for p in parents:
            node = node[p]
        if value == "DELETE":
            del node[last]
        else:
            node[last] = value
        (tmp / "router.json").write_text(json.dumps(m))
        Router.load(tmp, variant="fp32").score(["hello there"])
    return run


for path, value in [("threshold.default", 5), ("threshold.default", -1),
                    ("threshold.default", float("nan")), ("threshold", {"default": None}),
                    ("threshold", "abc"), ("threshold.default", "DELETE"),
                    ("preprocess.max_length", -1), ("preprocess.max_length", "x"),
                    ("preprocess.max_length", 0), ("preprocess.max_length", 10**9),
                    ("onnx.variants.fp32", "../model.onnx"),
                    ("preprocess.tokenizer", "../../etc/tok.json"),
                    ("onnx.default_variant", "fp16")]:
    attempt(f"manifest {path}={value!r}", manifest_case(path, value))


def symlink_case():
    from confroute.runtime import Router
    root = Path(tempfile.mkdtemp())
    tmp = root / "a"
    shutil.copytree(ART, tmp)
    shutil.copyfile(tmp / "model.onnx", root / "outside.onnx")
    (tmp / "model.onnx").unlink()
    (tmp / "model.onnx").symlink_to(root / "outside.onnx")
    Router.load(tmp, variant="fp32")


attempt("manifest: model.onnx symlink leaving the artifact", symlink_case)


def damaged_run(name):
    def run():
        from confroute.export import export
        root = Path(tempfile.mkdtemp())
        run_dir = root / "run"
        shutil.copytree(RUN, run_dir)
        path = run_dir / name
        if name == "metrics.json":
            path.write_text("{half")
        elif name == "val.parquet":
            path.write_text("id,prompt,label\n")
        else:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        export(run_dir, root / "out")
    return run


for name in ("metrics.json", "val.parquet", "model/model.safetensors"):
    attempt(f"export: damaged {name}", damaged_run(name))


def data_case(column, value):
    def run():
        from confroute.config import DataConfig, LabelConfig
        from confroute.dataset.schema import load
        tmp = Path(tempfile.mkdtemp()) / "d.csv"
        if column.startswith("winner"):
            rows = [{"model_a": "e", "model_b": "c", "prompt": f"p{i}", "winner_model_a": 1,
                     "winner_model_b": 0, "winner_tie": 0} for i in range(6)]
            cfg = {"edge_model": "e"}
        elif column == "label":
            rows = [{"prompt": f"p{i}", "label": i % 2} for i in range(6)]
            cfg = {}
        else:
            rows = [{"prompt": f"p{i}", "se_edge": 0.1 * i, "se_cloud": 0.2, "rating_edge": 3,
                     "rating_cloud": 5} for i in range(6)]
            cfg = {"label": LabelConfig(rule="judge" if "rating" in column else "tau")}
        rows[3][column] = value
        pd.DataFrame(rows).to_csv(tmp, index=False)
        load(DataConfig(source=str(tmp), **cfg))
    return run


for column, value in [("label", "yes"), ("se_edge", "high"), ("se_cloud", "low"),
                      ("rating_edge", "good"), ("rating_cloud", "9/10"),
                      ("winner_model_a", "yes"), ("winner_model_b", "no")]:
    attempt(f"train data: {column}={value!r}", data_case(column, value))


def truth_case(column):
    def run():
        from confroute.evaluation.groundtruth import load_truth
        tmp = Path(tempfile.mkdtemp()) / "t.csv"
        frame = pd.DataFrame({"prompt": ["a", "b"], "rating_edge": [1, 2], "rating_cloud": [2, 1]})
        frame[column] = frame[column].astype(object)
        frame.loc[1, column] = "yes"
        frame.to_csv(tmp, index=False)
        load_truth(str(tmp))
    return run


for column in ("rating_edge", "rating_cloud"):
    attempt(f"evaluate truth: {column}='yes'", truth_case(column))


def config_case(key):
    def run():
        from confroute.config import RunConfig, override
        override(RunConfig(), {key: float("nan")})
    return run


for key in ("data.val_fraction", "data.label.tau", "data.label.epsilon", "model.dropout",
            "train.learning_rate", "train.warmup_ratio", "train.weight_decay"):
    attempt(f"config {key}=nan", config_case(key))


def export_cfg(key):
    def run():
        from confroute.config import ExportConfig
        ExportConfig(**{key: float("nan")})
    return run


for key in ("threshold", "parity_tolerance", "int8_auroc_tolerance"):
    attempt(f"export config {key}=nan", export_cfg(key))

for name, outcome in results:
    print(f"{outcome:28s} {name}")
counts = {}
for _, outcome in results:
    key = outcome.split(" (")[0]
    counts[key] = counts.get(key, 0) + 1
print("TOTAL", len(results), counts)
