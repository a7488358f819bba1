"""confroute.dataset.tables: one reader and one writer of table files, by suffix."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from confroute.dataset import tables
from confroute.errors import DataError

FRAME = pd.DataFrame({"id": ["a", "b"], "prompt": ["2 + 2 = ?", "café −5"], "label": [0.0, 1.0]})


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_round_trip_by_suffix(tmp_path: Path, suffix: str) -> None:
    path = tables.write(FRAME, tmp_path / f"t{suffix}")
    back = tables.read(path)
    assert back["prompt"].tolist() == FRAME["prompt"].tolist()
    assert back["label"].tolist() == [0.0, 1.0]


def test_json_array_and_json_lines_both_read(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[{"prompt": "x"}, {"prompt": "y"}]')
    (tmp_path / "l.json").write_text('{"prompt": "x"}\n{"prompt": "y"}\n')
    assert tables.read(tmp_path / "a.json")["prompt"].tolist() == ["x", "y"]
    assert tables.read(tmp_path / "l.json")["prompt"].tolist() == ["x", "y"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("t.xlsx", b"x", "must be .parquet, .jsonl, .json, .csv; found '.xlsx'"),
    ("t.parquet", b"not parquet", "could not be read as parquet"),
    ("t.jsonl", b"{broken\n", "could not be read as jsonl"),
    ("t.csv", b"prompt\n", "has no rows"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, name: str, content: bytes,
                                                 message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        tables.read(tmp_path / name)
    with pytest.raises(DataError, match="does not exist"):
        tables.read(tmp_path / "missing.csv")


def test_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    path = tables.write(FRAME, tmp_path / "t.parquet")
    before = path.read_bytes()

    def broken(self, target, **kwargs):
        Path(target).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="No space"):
        tables.write(FRAME.head(1), path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    with pytest.raises(DataError, match="must end in"):
        tables.write(FRAME, tmp_path / "t.xlsx")
