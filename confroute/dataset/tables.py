"""Tables on disk, by suffix: .parquet, .jsonl, .json, .csv. The one place confroute reads or
writes a table file (labelled data, scores, label tables, RouteLLM's evaluation files), and
where a dataset given by name (bundled, a file, or a Hugging Face dataset) is read.

Reading names the file and the fix when the suffix is unknown or the content does not parse;
writing is atomic (a temporary file renamed over the target), so a killed or failed write
leaves the user's previous file as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confroute.errors import DataError, require
from confroute.files import replacing

SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")


def read(path: str | Path, allowed: Sequence[str] = SUFFIXES, what: str = "table",
         empty_ok: bool = False) -> Any:
    """The pandas DataFrame in `path`, read by its suffix (one of `allowed`).

    `.json` holds a JSON array of records, or JSON lines. Raises DataError when the file is
    missing, its suffix is not allowed, it does not parse, or (unless `empty_ok`) it has no rows.
    """
    pd = require("pandas", "train")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise DataError(f"{path}: a {what} must be {', '.join(allowed)}; found '{path.suffix}'")
    if not path.is_file():
        raise DataError(f"{what} file {path} does not exist")
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            frame = pd.read_csv(path)
        else:
            array = suffix == ".json" and path.read_text(encoding="utf-8").lstrip()[:1] == "["
            frame = pd.read_json(path, lines=not array)
    except Exception as exc:  # pandas and pyarrow raise many types; the message is what matters
        raise DataError(f"{path} could not be read as {suffix[1:]}: {exc}") from exc
    if len(frame) == 0 and not empty_ok:
        raise DataError(f"{path} has no rows")
    return frame


def write(frame: Any, path: str | Path, allowed: Sequence[str] = (".parquet", ".jsonl", ".csv")
          ) -> Path:
    """Write `frame` to `path` by its suffix (one of `allowed`), atomically; returns the path.

    JSON lines keep non-ASCII text as is. Raises DataError for a suffix not in `allowed`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise DataError(f"output {path} must end in {', '.join(allowed)}")
    with replacing(path) as partial:
        if suffix == ".parquet":
            frame.to_parquet(partial, index=False)
        elif suffix == ".jsonl":
            frame.to_json(partial, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_csv(partial, index=False)
    return path


def read_table(source: str, hf_split: str = "train") -> Any:
    """A bundled dataset name, a local parquet/jsonl/json/csv file, or a Hugging Face dataset
    (its `hf_split`), as a pandas DataFrame. Raises DataError naming the source when none of
    these reads it."""
    from confroute.dataset.builtin import builtin_path

    path = builtin_path(source) or Path(source)
    if path.exists():
        return read(path, what="labelled table")
    if source.endswith((".parquet", ".jsonl", ".json", ".csv")) or source.startswith((".", "/")):
        raise DataError(f"data file {source} does not exist; give a .parquet/.jsonl/.csv path, "
                        "a bundled dataset name (confroute datasets), or a Hugging Face name")
    datasets = require("datasets", "train")
    try:
        ds = datasets.load_dataset(source, split=hf_split)
    except Exception as exc:  # the hub raises many types; the message is what matters
        raise DataError(f"could not load '{source}' as a bundled name, a local file, or a Hugging "
                        f"Face dataset (split '{hf_split}'): {type(exc).__name__}: {exc}") from exc
    return ds.to_pandas()
