"""From the decision log to a labelled table: logged outcomes joined to logged text.

A request becomes a row when it has outcomes that rate the models' answers (shadow-judge
verdicts, explicit feedback) and its text was logged. Each model of the request's ladder gets a
rating in [0, 1] (higher is better):

- a judge verdict between models a and b (MT-Bench pairwise, both orders) rates the winner 1
  and the loser 0, a tie 1 for both (as the project's judge comparison counts a tie as best for
  both answers); a model compared several times keeps its lowest rating (it was judged at least
  as good as every model it was compared with only if it never lost);
- feedback rates the answer the client got (the answering model's): thumbs up 1, down 0, or
  the rating given, averaged over sources;
- a model with both kinds gets their mean; the top model, when unrated, counts as adequate if
  `top_adequate` (it is the fallback every request can reach), so feedback on a cheaper model's
  answer makes a complete row.

Rows are split by time: the newest `test_fraction` of them (by decision time) are `test`, the
older ones `train` (training draws its validation rows from those), so a router trained on a
log is judged on traffic that came after everything it saw. The table has `id` (the request
id), `prompt`, `time`, `split`, `category` and `source` (the request's group, else "log"), one
rating column per model named as the model (a K-model table, `confroute.dataset.ratings`) and,
for two models, `rating_edge` / `rating_cloud` (the two-model scores format, labelled by the
`judge` rule). Rows without text (text logging off), rows missing a model's rating and rows of
another ladder are counted and left out.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confroute.errors import ConfigError, DataError, require
from confroute.traffic import store

NO_TEXT = ("{n} of the {total} requests with outcomes have no logged text (text logging is "
           "off), so they cannot train a router; turn it on in the service's settings (log.text: "
           "true, optionally with log.redact) to keep the text of new requests")


@dataclasses.dataclass
class LogTableSettings:
    """How the decision log becomes a labelled table.

    Read by `confroute logs export`, training from a database URL and the promotion gate."""

    test_fraction: float = 0.2
    """The newest share of the rows (by decision time) held out as `test`; the older rows are
    `train` (training draws validation rows from them)."""
    top_adequate: bool = True
    """A row whose top (most expensive) model has no rating counts it as adequate (1.0): it is
    the fallback of every request. Off: such rows are left out."""
    models: list[str] = dataclasses.field(default_factory=list)
    """Keep the requests routed among these models (cheapest first); empty: the models of the
    newest request with outcomes. Requests of other ladders are counted and left out."""
    since: float | None = None
    """Only decisions at or after this time (seconds since the epoch, UTC)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must be in [0, 1); found {self.test_fraction!r}")
        if self.since is not None and (isinstance(self.since, bool)
                                       or not math.isfinite(self.since)):
            raise ConfigError(f"since must be a finite time (seconds since the epoch, UTC); "
                              f"found {self.since!r}")


def read_rows(url: str, since: float | None = None) -> tuple[list[dict], dict[str, list[dict]]]:
    """The decisions that have rating outcomes (judge, feedback), oldest first, and their
    outcomes by request id. Raises ConfigError when the database cannot be read."""
    from sqlalchemy import exc, select

    from confroute.traffic.schema import decisions, outcomes

    engine = store.connect_reader(url)  # never writes into its source
    rated = select(outcomes.c.request_id).where(outcomes.c.kind.in_(("judge", "feedback")))
    query = select(decisions).where(decisions.c.request_id.in_(rated)).order_by(decisions.c.time)
    if since is not None:
        query = query.where(decisions.c.time >= since)
    try:
        with engine.connect() as conn:
            found = [dict(r._mapping) for r in conn.execute(query)]
            by_request: dict[str, list[dict]] = collections.defaultdict(list)
            for row in conn.execute(select(outcomes).where(
                    outcomes.c.kind.in_(("judge", "feedback")),
                    outcomes.c.request_id.in_(rated))):
                by_request[row.request_id].append(dict(row._mapping))
    except exc.SQLAlchemyError as error:
        raise ConfigError(f"cannot read the decision log at {store.shown(url)}: "
                          f"{store.one_line_error(error)}") from error
    finally:
        engine.dispose()
    return found, by_request


def ratings(decision: dict[str, Any], outcomes: Sequence[dict[str, Any]], top_adequate: bool
            ) -> dict[str, float]:
    """{model: rating in [0, 1]} of one request from its outcomes (see the module docstring);
    models without evidence are absent."""
    judged: dict[str, float] = {}
    felt: dict[str, list[float]] = collections.defaultdict(list)
    for outcome in outcomes:
        verdict = outcome.get("verdict") or {}
        if outcome["kind"] == "judge" and len(verdict.get("models", ())) == 2:
            for model in verdict["models"]:
                best = float(verdict["winner"] in (model, "tie"))
                judged[model] = min(judged.get(model, 1.0), best)
        elif outcome["kind"] == "feedback" and outcome.get("rating") is not None:
            model = outcome.get("model") or decision.get("answering_model")
            if model is not None:
                felt[model].append(float(outcome["rating"]))
    out = {}
    for model in set(judged) | set(felt):
        values = ([judged[model]] if model in judged else []) + (
            [sum(felt[model]) / len(felt[model])] if felt[model] else [])
        out[model] = sum(values) / len(values)
    top = list(decision["models"])[-1]
    if top_adequate and top not in out and out:
        out[top] = 1.0
    return out


def log_table(url: str, settings: LogTableSettings | None = None) -> tuple[Any, dict[str, Any]]:
    """The labelled table of the log at `url` (a pandas DataFrame, see the module docstring) and
    a report: rows per split, models, what was left out and why (`messages` says how to get
    more rows). Raises ConfigError when the log cannot be read."""
    pd = require("pandas", "train")
    settings = settings or LogTableSettings()
    found, by_request = read_rows(url, settings.since)
    models = _ladder(found, settings.models)
    dropped = collections.Counter({"no_text": 0, "other_models": 0, "incomplete": 0})
    rows = []
    for decision in found:
        if list(decision["models"]) != models:
            dropped["other_models"] += 1
        elif decision["text"] is None:
            dropped["no_text"] += 1
        else:
            rated = ratings(decision, by_request[decision["request_id"]], settings.top_adequate)
            if any(m not in rated for m in models):
                dropped["incomplete"] += 1
                continue
            rows.append(_row(decision, rated, models))
    frame = pd.DataFrame(rows, columns=_columns(models))
    n_test = math.ceil(settings.test_fraction * len(frame)) if len(frame) else 0
    frame["split"] = ["train"] * (len(frame) - n_test) + ["test"] * n_test  # oldest first
    report = _report(url, frame, models, dropped, len(found), settings)
    report["test_period"] = _test_period(found, models, report["test_from_time"])
    return frame, report


def _test_period(found: list[dict[str, Any]], models: list[str], since: float | None
                 ) -> dict[str, Any]:
    """The share the deployment sent past the cheapest model over every request of `models`
    with outcomes in the held-out period, those left out of the table included: with feedback
    alone, a request sent up has no rating of the cheaper model and is left out, so the table's
    own test rows would show a cloud share near 0."""
    chosen = [d["chosen_model"] for d in found
              if since is not None and d["time"] >= since and list(d["models"]) == models]
    share = sum(c != models[0] for c in chosen) / len(chosen) if chosen else None
    return {"requests": len(chosen), "cloud_share": share}


def _ladder(found: list[dict[str, Any]], wanted: Sequence[str]) -> list[str]:
    """The models (cheapest first, as logged) of the newest request routed among `wanted` (in
    any order), or of the newest request when `wanted` is empty."""
    for decision in reversed(found):
        if not wanted or set(decision["models"]) == set(wanted):
            return list(decision["models"])
    return list(wanted)


def _row(decision: dict[str, Any], rated: dict[str, float], models: list[str]) -> dict[str, Any]:
    group = decision["category"] or "log"
    row = {"id": decision["request_id"], "prompt": decision["text"], "time": decision["time"],
           "category": group, "source": group, "artifact_id": decision["artifact_id"],
           "chosen_model": decision["chosen_model"], **{m: rated[m] for m in models}}
    if len(models) == 2:
        row["rating_edge"], row["rating_cloud"] = rated[models[0]], rated[models[1]]
    return row


def _columns(models: list[str]) -> list[str]:
    pair = ["rating_edge", "rating_cloud"] if len(models) == 2 else []
    return ["id", "prompt", "time", "category", "source", "artifact_id", "chosen_model",
            *models, *pair]


def _report(url: str, frame: Any, models: list[str], dropped: collections.Counter,
            total: int, settings: LogTableSettings) -> dict[str, Any]:
    messages = []
    if dropped["no_text"]:
        messages.append(NO_TEXT.format(n=dropped["no_text"], total=total))
    if dropped["incomplete"]:
        messages.append(f"{dropped['incomplete']} requests lack a rating of some model; shadow "
                        "judging (shadow.fraction > 0) rates every model of a request")
    if dropped["other_models"]:
        messages.append(f"{dropped['other_models']} requests were routed among other models "
                        f"than {models}; choose them with models")
    test = frame[frame["split"] == "test"]
    return {"source": store.shown(url), "models": models, "requests_with_outcomes": total,
            "rows": {"train": int((frame["split"] == "train").sum()), "test": len(test)},
            "dropped": dict(dropped), "messages": messages,
            "test_fraction": settings.test_fraction,
            "test_from_time": float(test["time"].min()) if len(test) else None,
            "time_range": [float(frame["time"].min()), float(frame["time"].max())]
            if len(frame) else None}


def export(url: str, out: str | Path, settings: LogTableSettings | None = None
           ) -> dict[str, Any]:
    """Write the log's labelled table to `out` (.parquet, .jsonl or .csv; atomic) and return
    the report. Raises DataError when no row can be made (the report's reasons in the
    message), ConfigError when the log cannot be read."""
    from confroute.dataset import tables

    settings = settings or LogTableSettings()
    frame, report = log_table(url, settings)
    if len(frame) == 0:
        hint = "record outcomes first (feedback or shadow judging)"
        if settings.since is not None and not report["requests_with_outcomes"]:
            hint = (f"none has outcomes at or after --since {settings.since!r} (seconds since "
                    "the epoch, UTC); give an earlier time or leave it out")
        raise DataError(f"the decision log at {store.shown(url)} has no request with both "
                        f"logged text and ratings of every model ({report['dropped']}); "
                        + "; ".join(report["messages"] or [hint]))
    tables.write(frame, out)
    return report | {"out": str(out)}


def load_from_log(cfg: Any, load: Callable[[Any], Any]) -> Any:
    """`confroute.dataset.schema.load` for a database URL in `cfg.source`: the log's table
    (time-split, `LogTableSettings` defaults; K models: `cfg.models`) labelled by the same
    rules as any table; its report says where the rows came from and what was left out."""
    with tempfile.TemporaryDirectory(prefix="confroute-log-") as folder:
        path = Path(folder) / "log.parquet"
        report = export(cfg.source, path, LogTableSettings(models=list(cfg.models)))
        result = load(dataclasses.replace(cfg, source=str(path)))
    result.report["source"] = report["source"]
    result.report["log"] = {k: v for k, v in report.items() if k != "out"}
    return result
