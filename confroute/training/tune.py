"""`confroute tune`: an optuna study whose every trial is one `confroute.training.fit.fit` run.

The study varies the settings in `SearchSpace` around a base RunConfig, maximises (or minimises)
one validation metric, prunes a trial whose metric after some validation falls below the median
of earlier trials at the same validation, and writes the best trial's complete RunConfig as
`best.yaml`, which `confroute train --config best.yaml` accepts.

Output directory:
  study.db        the optuna study (sqlite), unless `storage` names another optuna storage URL
  trials/NNNN/    each trial's run directory (see confroute.training.fit) without checkpoints/;
                  model/ is kept only for trials that were the study's best when they finished
  best.yaml       the best trial's RunConfig
  study.json      the best trial, the base trial, and every trial's state, value and parameters

Several workers (processes or machines) share one study by using the same storage URL and study
name. `n_trials` counts the study's finished (complete or pruned) trials, so rerunning the same
command after an interruption resumes the study and runs only the trials still missing.

Label rule parameters (`tau`, `judge_margin`) change only the training labels: every trial is
scored against the validation labels of the base config, so trials stay comparable.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from confroute.config import RunConfig, dump_yaml, from_dict, override, to_dict
from confroute.errors import ConfigError, ConfrouteError, require
from confroute.files import write_json
from confroute.training.fit import MAXIMISED, METRICS, Metric
from confroute.training.interrupts import Interrupts
from confroute.training.search_space import PARAMS, SearchSpace, active_space, check_space
from confroute.training.study_storage import masked, open_storage

DIRECTIONS = {m: "maximize" if m in MAXIMISED else "minimize" for m in METRICS}
BASE_ATTR = "confroute_base"  # user attribute marking the trial that runs the base config



@dataclasses.dataclass
class TuneConfig:
    """A study: the base run, the search space, and how to search."""

    base: RunConfig = dataclasses.field(default_factory=RunConfig)
    """The RunConfig every trial starts from (data, encoder, trainer, budget such as max_rows)."""
    space: SearchSpace = dataclasses.field(default_factory=SearchSpace)
    n_trials: int = 20
    """Finished (complete or pruned) trials the study should hold; reruns add only what is
    missing."""
    timeout_s: float | None = None
    """Stop starting new trials after this many seconds of this worker."""
    metric: Metric = "val_auroc"
    """Optimised at the checkpoint fit keeps (the best validation AUROC); AUROC and AP are
    maximised, Brier, ECE and loss minimised."""
    storage: str | None = None
    """Any optuna storage URL (sqlite:///path.db, postgresql://..., mysql://...); default
    sqlite:///OUT/study.db."""
    study_name: str = "confroute"
    seed: int = 0
    """Sampler seed; give each worker of a shared study its own."""
    startup_trials: int = 5
    """Random trials before the TPE sampler models the results."""
    pruning: bool = True
    prune_startup_trials: int = 2
    """Finished trials before any trial may be pruned."""
    prune_warmup_validations: int = 0
    """Validations of a trial that are never pruned."""
    enqueue_base: bool = True
    """A fresh study runs the base config first, so the best can be compared against it."""
    keep_models: bool = False
    """Keep model/ of every trial, not only of trials that were the best when they finished."""

    def __post_init__(self) -> None:
        if self.n_trials < 1:
            raise ConfigError(f"n_trials must be >= 1; found {self.n_trials}")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0 or unset; found {self.timeout_s}")
        for name in ("startup_trials", "prune_startup_trials", "prune_warmup_validations"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0; found {getattr(self, name)}")
        if not self.study_name.strip():
            raise ConfigError("study_name must not be empty")


@dataclasses.dataclass
class TuneResult:
    best_config: Path
    best_value: float
    best_trial: int
    best_params: dict[str, Any]
    base_value: float | None
    counts: dict[str, int]
    summary: Path


@dataclasses.dataclass
class Prepared:
    """Everything checked before the first trial: the active space, the data, the storage."""

    active: dict[str, Any]
    data: Any  # schema.LabelledPrompts of the base config
    storage: Any
    storage_url: str
    skipped: dict[str, str]


def tune(cfg: TuneConfig, out_dir: str | Path) -> TuneResult:
    """Run (or resume) the study and write best.yaml and study.json under `out_dir`."""
    optuna = require("optuna", "train")
    out = Path(out_dir)
    prepared = prepare(cfg, out)
    study = _open_study(optuna, cfg, prepared)
    done = _finished(optuna, study)
    if cfg.enqueue_base and not study.trials:
        study.enqueue_trial({}, user_attrs={BASE_ATTR: True})
    missing = cfg.n_trials - done
    if missing > 0:
        stop = optuna.study.MaxTrialsCallback(
            cfg.n_trials, states=(optuna.trial.TrialState.COMPLETE,
                                  optuna.trial.TrialState.PRUNED))
        with Interrupts() as interrupts:
            try:
                study.optimize(_objective(optuna, cfg, prepared, out, interrupts),
                               n_trials=missing, timeout=cfg.timeout_s, catch=(ConfrouteError,),
                               callbacks=[stop, _model_keeper(optuna, cfg),
                                          lambda *_: interrupts.check()],
                               gc_after_trial=True)
            except Exception as exc:
                if _interrupted(exc) or interrupts.received:
                    raise KeyboardInterrupt from exc
                raise
            interrupts.check()
    return _summarise(optuna, study, cfg, prepared, out)


def _interrupted(exc: BaseException) -> bool:
    """Whether `exc` was raised while an interrupt was being handled. A Ctrl-C that lands
    while optuna records a trial's end can surface as an error of optuna's own handler (e.g. an
    UnboundLocalError, the kind of optuna/optuna#5280) instead of KeyboardInterrupt; the study
    resumes either way (the trial is left RUNNING, then failed by its heartbeat)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__context__
    return False


def prepare(cfg: TuneConfig, out: Path) -> Prepared:
    """Check the base config, the search space, the data and the storage; open the storage."""
    from confroute.dataset import schema

    _check_single_process(cfg.base)
    data = schema.load(cfg.base.data)
    active, skipped = active_space(cfg.space, data)
    if not active:
        raise ConfigError("the search space is empty: every field of `space` is null (or a label "
                          "parameter the data does not use); give at least one range or list")
    check_space(active, cfg.base)
    if cfg.storage is None:
        out.mkdir(parents=True, exist_ok=True)
    url = cfg.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    storage = open_storage(url)
    out.mkdir(parents=True, exist_ok=True)
    return Prepared(active, data, storage, url, skipped)



def _check_single_process(base: RunConfig) -> None:
    trainer = base.train.trainer
    if str(trainer.devices) != "1" or trainer.num_nodes != 1 or "ddp" in trainer.strategy:
        raise ConfigError(
            f"tune runs each trial inside its own process, so base.train.trainer must use one "
            f"device on one node; found devices={trainer.devices!r}, num_nodes="
            f"{trainer.num_nodes}, strategy={trainer.strategy!r}. To use several devices or "
            "machines, start one `confroute tune` worker per device (e.g. CUDA_VISIBLE_DEVICES=i) "
            "with the same --storage and --study-name")


# --- study -----------------------------------------------------------------------


def _open_study(optuna: Any, cfg: TuneConfig, prepared: Prepared) -> Any:
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=cfg.prune_startup_trials,
                                          n_warmup_steps=cfg.prune_warmup_validations)
              if cfg.pruning else optuna.pruners.NopPruner())
    sampler = optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=cfg.startup_trials)
    try:
        return optuna.create_study(storage=prepared.storage, study_name=cfg.study_name,
                                   direction=DIRECTIONS[cfg.metric], sampler=sampler,
                                   pruner=pruner, load_if_exists=True)
    except ValueError as exc:  # an existing study with another direction
        raise ConfigError(f"study '{cfg.study_name}' in {masked(prepared.storage_url)} cannot "
                          f"be resumed for metric {cfg.metric}: {exc}. Use another "
                          "--study-name") from exc


def _finished(optuna: Any, study: Any) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


# --- trials ----------------------------------------------------------------------------------


def _objective(optuna: Any, cfg: TuneConfig, prepared: Prepared, out: Path,
               interrupts: Interrupts) -> Any:
    from confroute.training.fit import fit

    def objective(trial: Any) -> float:
        interrupts.check()  # a Ctrl-C lost in a finalizer since the last trial
        run_cfg = _trial_config(trial, cfg, prepared.active)
        run_dir = out / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("config", to_dict(run_cfg))
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            data = _trial_data(run_cfg, cfg.base, prepared.data)
            result = fit(run_cfg, run_dir, callbacks=[PruneOnValidation(trial, cfg.metric)],
                         data=data)
        except ConfrouteError as exc:
            trial.set_user_attr("error", str(exc))
            raise
        except SystemExit as exc:
            # Lightning turns Ctrl-C into sys.exit(1); as KeyboardInterrupt optuna marks the
            # trial failed (a rerun resumes the study) and the CLI reports an interruption.
            raise KeyboardInterrupt(f"trial {trial.number} interrupted") from exc
        finally:
            interrupts.restore()  # Lightning ignores SIGINT after a Ctrl-C it caught
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # model/ holds the weights
        metrics = {k: v for k, v in result.metrics.items() if k.startswith("val_")}
        trial.set_user_attr("metrics", metrics)
        if cfg.metric not in metrics:
            raise ConfigError(f"trial {trial.number} finished without a {cfg.metric} value; "
                              "check base.train.val_check_interval and max_steps")
        return float(metrics[cfg.metric])

    return objective


def _trial_config(trial: Any, cfg: TuneConfig, active: dict[str, Any]) -> RunConfig:
    if trial.user_attrs.get(BASE_ATTR):
        return cfg.base
    values = {}
    for name, space in active.items():
        kind = PARAMS[name].kind
        if kind == "choice":
            value = trial.suggest_categorical(name, space)
        elif kind == "int":
            value = trial.suggest_int(name, space[0], space[1])
        else:
            value = trial.suggest_float(name, space[0], space[1], log=kind == "log")
        values[PARAMS[name].key] = value
    return override(cfg.base, values)


def _trial_data(run_cfg: RunConfig, base: RunConfig, base_data: Any) -> Any:
    """The base data, or (when the trial changes the label rule) training rows labelled by the
    trial's rule beside the base config's validation and test rows."""
    if run_cfg.data == base.data:
        return base_data
    import pandas as pd

    from confroute.dataset import schema

    trial_data = schema.load(run_cfg.data)
    held = base_data.frame[base_data.frame["split"] != "train"]
    train = trial_data.split("train")
    train = train[~train["id"].astype(str).isin(set(held["id"].astype(str)))]
    frame = pd.concat([train, held], ignore_index=True)
    report = {**trial_data.report, "validation_labels": "base config's label rule",
              "rows": {s: int((frame["split"] == s).sum()) for s in schema.SPLITS}}
    return schema.LabelledPrompts(frame, report)


class PruneOnValidation(pl.Callback):
    """Reports the trial's metric after every validation; stops a trial the pruner rejects.

    The step reported is the validation's index (1, 2, ...), so trials with different batch
    sizes are compared at the same point of their schedule.
    """

    def __init__(self, trial: Any, metric: str):
        self.trial, self.metric, self.validations = trial, metric, 0

    def on_validation_end(self, trainer: pl.Trainer, _: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if trainer.sanity_checking or value is None:
            return
        self.validations += 1
        self.trial.report(float(value), self.validations)
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"{self.metric}={float(value):.4f} at validation "
                                     f"{self.validations}")


def _model_keeper(optuna: Any, cfg: TuneConfig) -> Any:
    """After each trial: delete its model/ unless it is the study's best so far (or keep_models)."""

    def callback(study: Any, trial: Any) -> None:
        run_dir = trial.user_attrs.get("run_dir")
        if cfg.keep_models or run_dir is None:
            return
        best = trial.state == optuna.trial.TrialState.COMPLETE and _best_number(study) == \
            trial.number
        if not best:
            shutil.rmtree(Path(run_dir) / "model", ignore_errors=True)

    return callback


def _best_number(study: Any) -> int | None:
    try:
        return study.best_trial.number
    except ValueError:  # no complete trial yet
        return None


# --- results ---------------------------------------------------------------------------------


def _summarise(optuna: Any, study: Any, cfg: TuneConfig, prepared: Prepared,
               out: Path) -> TuneResult:
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in optuna.trial.TrialState}
    rows = [_trial_row(t) for t in trials]
    best_number = _best_number(study)
    if best_number is None:
        errors = [t.user_attrs["error"] for t in trials if "error" in t.user_attrs]
        raise ConfrouteError(f"study '{cfg.study_name}' has no complete trial ({counts}); "
                          + (f"first error: {errors[0]}" if errors else
                             "rerun with more trials or without pruning"))
    best = study.best_trial
    best_cfg = from_dict(RunConfig, best.user_attrs["config"])
    best_path = out / "best.yaml"
    dump_yaml(best_cfg, best_path)
    base = next((t for t in trials if t.user_attrs.get(BASE_ATTR)
                 and t.state == optuna.trial.TrialState.COMPLETE), None)
    summary = {
        "study_name": cfg.study_name, "storage": masked(prepared.storage_url),
        "metric": cfg.metric, "direction": DIRECTIONS[cfg.metric],
        "best": {"trial": best.number, "value": best.value, "params": best.params,
                 "metrics": best.user_attrs.get("metrics"), "run_dir": best.user_attrs.get(
                     "run_dir"), "config": str(best_path)},
        "base": None if base is None else {"trial": base.number, "value": base.value,
                                           "metrics": base.user_attrs.get("metrics")},
        "searched": prepared.active, "not_searched": prepared.skipped,
        "counts": counts, "trials": rows,
    }
    path = out / "study.json"
    write_json(path, summary, default=str)
    return TuneResult(best_path, float(best.value), best.number, dict(best.params),
                      None if base is None else float(base.value), counts, path)


def _trial_row(trial: Any) -> dict[str, Any]:
    return {"trial": trial.number, "state": trial.state.name.lower(), "value": trial.value,
            "params": trial.params, "base": bool(trial.user_attrs.get(BASE_ATTR)),
            "validations": len(trial.intermediate_values),
            "error": trial.user_attrs.get("error")}
