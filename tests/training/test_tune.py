"""confroute tune: a small real study on a tiny encoder, pruning, resume, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from confroute.config import RunConfig, from_dict, load_yaml, to_dict
from confroute.errors import ConfigError
from confroute.training.search_space import PARAMS
from confroute.training.tune import TuneConfig, tune

from conftest import tiny_config

# A search space small enough for the tiny encoder (2 layers, 128 positions) and for CI.
SPACE = {"learning_rate": [1e-4, 3e-3], "batch_size": [8, 16], "max_epochs": [1, 2],
         "max_length": [16, 32], "pooling": ["mean", "cls"], "dropout": [0.0, 0.3],
         "warmup_ratio": [0.0, 0.2], "freeze_layers": [0, 1]}


def study_config(encoder: Path, data: Path, **values: object) -> TuneConfig:
    base = tiny_config(encoder, data, **{"train.max_epochs": 1,
                                         "train.val_check_interval": 0.5})
    return from_dict(TuneConfig, {"base": to_dict(base), "space": SPACE, "n_trials": 3,
                                  "startup_trials": 2, "prune_startup_trials": 1, **values})


@pytest.mark.slow
def test_study_finds_best_config_that_train_accepts_and_resumes(tmp_path, tiny_encoder_dir,
                                                                tiny_data_file):
    cfg = study_config(tiny_encoder_dir, tiny_data_file)
    result = tune(cfg, tmp_path)
    summary = json.loads(result.summary.read_text())
    finished = [t for t in summary["trials"] if t["state"] in ("complete", "pruned")]
    assert len(finished) == 3
    assert summary["trials"][0]["base"] and summary["base"]["trial"] == 0
    completed = [t["value"] for t in summary["trials"] if t["state"] == "complete"]
    assert result.best_value == max(completed)
    assert result.base_value == summary["trials"][0]["value"]
    # Every trial reported after each validation (two per epoch).
    assert all(t["validations"] >= 1 for t in finished)

    best = load_yaml(RunConfig, result.best_config)  # what `confroute train --config` reads
    for name, value in result.best_params.items():
        node = to_dict(best)
        for part in PARAMS[name].key.split("."):
            node = node[part]
        assert node == value
    best_dir = Path(summary["best"]["run_dir"])
    assert (best_dir / "model" / "model.safetensors").is_file()
    assert not (best_dir / "checkpoints").exists()

    # Resume: the same study asked for 5 trials runs only the 2 missing, no second base trial.
    resumed = tune(from_dict(TuneConfig, {**to_dict(cfg), "n_trials": 5}), tmp_path)
    summary = json.loads(resumed.summary.read_text())
    assert [t["trial"] for t in summary["trials"]] == [0, 1, 2, 3, 4]
    assert sum(t["base"] for t in summary["trials"]) == 1
    assert resumed.best_value >= result.best_value


def test_pruning_callback_stops_fit_with_trial_pruned(tmp_path, tiny_encoder_dir,
                                                      tiny_data_file):
    import optuna

    from confroute.training.fit import fit
    from confroute.training.tune import PruneOnValidation

    # This pruner rejects any AUROC (< 2), so the first reported validation must stop the run.
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    trial = study.ask()
    cfg = tiny_config(tiny_encoder_dir, tiny_data_file, **{"train.val_check_interval": 0.5})
    with pytest.raises(optuna.TrialPruned):
        fit(cfg, tmp_path / "run", callbacks=[PruneOnValidation(trial, "val_auroc")])
    assert list(study.trials[0].intermediate_values) == [1]
    assert not (tmp_path / "run" / "model").exists()


@pytest.mark.slow
def test_trials_left_running_by_a_dead_worker_do_not_block_resume(tmp_path, tiny_encoder_dir,
                                                                  tiny_data_file):
    import optuna

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    orphan = optuna.create_study(storage=url, study_name="s", direction="maximize").ask()
    cfg = study_config(tiny_encoder_dir, tiny_data_file, storage=url, study_name="s",
                       n_trials=1, enqueue_base=False)
    result = tune(cfg, tmp_path / "out")
    assert result.counts["complete"] + result.counts["pruned"] == 1
    assert result.counts["running"] == 1  # the orphan, until its heartbeat grace runs out
    assert result.best_trial != orphan.number


@pytest.mark.slow
def test_interrupted_study_resumes_from_the_cli(tmp_path, tiny_encoder_dir, tiny_data_file):
    import yaml

    out = tmp_path / "study"
    # A study far longer than the test waits, so the interrupt always lands in a running trial
    # (trials of the tiny router take ~2 s: a 3-trial study could end before the signal on a
    # loaded machine); the resume asks for 3 finished trials, which counts those already done.
    long_yaml, resume_yaml = tmp_path / "long.yaml", tmp_path / "resume.yaml"
    for path, n in ((long_yaml, 1000), (resume_yaml, 3)):
        cfg = to_dict(study_config(tiny_encoder_dir, tiny_data_file, n_trials=n, pruning=False))
        path.write_text(yaml.safe_dump(cfg))
    command = [sys.executable, "-m", "confroute", "tune", "--out", str(out), "--config"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen([*command, str(long_yaml)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while not (out / "trials" / "0001").exists() and proc.poll() is None:
        assert time.time() < deadline, "the study never started its second trial"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, output
    assert "interrupted" in output

    done = subprocess.run([*command, str(resume_yaml)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "study.json").read_text())
    states = [t["state"] for t in summary["trials"]]
    assert states.count("complete") >= 3 and states.count("fail") == 1  # the interrupted one
    assert load_yaml(RunConfig, out / "best.yaml")


# --- bad input is refused before any trial runs ----------------------------------------------


@pytest.mark.parametrize(("space", "message"), [
    ({"learning_rate": [1e-3, 1e-5]}, "impossible range"),
    ({"learning_rate": [0.0, 1e-3]}, "log scale"),
    ({"dropout": [0.0, 1.5]}, "model.dropout"),
    ({"batch_size": []}, "empty list"),
    ({"max_epochs": [1, 2, 3]}, "range [low, high]"),
    ({"freeze_layers": [0, 5]}, "has 2"),
    ({"max_length": [64, 512]}, "at most 128"),
    ({"pooling": ["mean", "max"]}, "model.pooling"),
    ({"tau": [0.1, 0.3]}, "uses tau"),
    ({name: None for name in SPACE} | {"tau": None, "judge_margin": None}, "empty"),
])
def test_impossible_search_space_fails_before_any_trial(tmp_path, tiny_encoder_dir,
                                                        tiny_data_file, space, message):
    cfg = study_config(tiny_encoder_dir, tiny_data_file)
    cfg = from_dict(TuneConfig, {**to_dict(cfg), "space": {**SPACE, **space}})
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        tune(cfg, tmp_path)
    assert not (tmp_path / "trials").exists()


def test_unknown_keys_are_rejected_with_their_name(tiny_encoder_dir, tiny_data_file):
    cfg = to_dict(study_config(tiny_encoder_dir, tiny_data_file))
    with pytest.raises(ConfigError, match="space.learning_rat"):
        from_dict(TuneConfig, {**cfg, "space": {"learning_rat": [1e-5, 1e-4]}})
    with pytest.raises(ConfigError, match="base.train.lr"):
        from_dict(TuneConfig, {**cfg, "base": {"train": {"lr": 1}}})


@pytest.mark.parametrize("storage", [
    "sqlite:////no/such/folder/study.db",
    "sqlite:////proc/study.db",  # the folder exists but no database can be created there
    "postgresql://user:secret@127.0.0.1:1/db",
    "not a url",
])
def test_unreachable_storage_fails_before_any_trial(tmp_path, tiny_encoder_dir, tiny_data_file,
                                                    storage):
    cfg = study_config(tiny_encoder_dir, tiny_data_file, storage=storage)
    with pytest.raises(ConfigError, match="storage") as error:
        tune(cfg, tmp_path)
    assert "secret" not in str(error.value)
    assert not any(tmp_path.iterdir())


def test_multi_device_trials_are_refused(tmp_path, tiny_encoder_dir, tiny_data_file):
    cfg = to_dict(study_config(tiny_encoder_dir, tiny_data_file))
    cfg["base"]["train"]["trainer"].update(devices=2, strategy="ddp")
    with pytest.raises(ConfigError, match="one `confroute tune` worker per device"):
        tune(from_dict(TuneConfig, cfg), tmp_path)


def test_label_parameters_follow_the_data(tmp_path, tiny_encoder_dir):
    """judge_margin is searched on scores data with ratings; validation labels stay the base's."""
    from confroute.dataset import schema
    from confroute.training.search_space import active_space
    from confroute.training.tune import _trial_data

    rows = [{"id": f"r{i}", "prompt": f"question {i} " + "hard " * (i % 3),
             "rating_edge": float(i % 3 == 0), "rating_cloud": float(i % 3 != 2) * (1 + i % 4)}
            for i in range(60)]
    path = tmp_path / "scores.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = tiny_config(tiny_encoder_dir, path)
    data = schema.load(base.data)
    active, skipped = active_space(from_dict(TuneConfig, {}).space, data)
    assert active["judge_margin"] == [0.0, 2.0] and "tau" in skipped

    from confroute.config import override

    trial_cfg = override(base, {"data.label.judge_margin": 1.5})
    mixed = _trial_data(trial_cfg, base, data)
    relabelled = schema.load(trial_cfg.data)
    assert mixed.split("val").equals(data.split("val"))
    train = mixed.split("train").set_index("id")["label"]
    expected = relabelled.split("train").set_index("id")["label"]
    assert train.equals(expected.loc[train.index])
    assert not train.equals(data.split("train").set_index("id")["label"].loc[train.index])


def test_an_error_raised_while_handling_an_interrupt_counts_as_the_interrupt():
    from confroute.training.tune import _interrupted

    def optuna_like() -> None:
        try:
            raise KeyboardInterrupt
        finally:
            raise UnboundLocalError("cannot access local variable 'updated_state'")

    try:
        optuna_like()
    except UnboundLocalError as exc:
        assert _interrupted(exc)
    assert not _interrupted(ValueError("a real failure"))
