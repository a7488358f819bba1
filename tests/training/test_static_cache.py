"""Issue 22 item 8: `--preset micro` distils its static table once per encoder and settings (every
run distilled again: 4 min 43 s of a 6-minute run).
Real model2vec distillations of the tiny BERT."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from confroute.training import static_cache

pytest.importorskip("model2vec")
DIMS = 16  # the tiny encoder is 32 wide


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CONFROUTE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def distillations(caplog: pytest.LogCaptureFixture) -> int:
    return sum("distilling" in r.getMessage() for r in caplog.records)


def test_the_second_call_reads_the_table_the_first_wrote(cache: Path, tiny_encoder_dir: Path,
                                                         caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="confroute")
    first = static_cache.distilled(str(tiny_encoder_dir), DIMS)
    second = static_cache.distilled(str(tiny_encoder_dir), DIMS)
    assert distillations(caplog) == 1
    assert first.embedding.shape[1] == DIMS
    np.testing.assert_array_equal(first.embedding, second.embedding)
    assert [p.name for p in (cache / "static").iterdir() if p.is_dir()] == [
        static_cache.cache_key(str(tiny_encoder_dir), DIMS)]


def test_the_key_follows_the_encoder_files_and_the_settings(tmp_path: Path,
                                                            tiny_encoder_dir: Path) -> None:
    key = static_cache.cache_key(str(tiny_encoder_dir), DIMS)
    assert key == static_cache.cache_key(str(tiny_encoder_dir), DIMS)
    assert key != static_cache.cache_key(str(tiny_encoder_dir), DIMS + 1)
    assert key != static_cache.cache_key(str(tiny_encoder_dir), None)
    copy = shutil.copytree(tiny_encoder_dir, tmp_path / "copy")
    assert static_cache.cache_key(str(copy), DIMS) == key  # content, not the path
    with (copy / "config.json").open("a") as handle:
        handle.write("\n")
    assert static_cache.cache_key(str(copy), DIMS) != key
    assert static_cache.cache_key("org/some-hub-name", DIMS) is None  # not a folder: no cache


def test_a_failed_write_leaves_no_table(cache: Path, tiny_encoder_dir: Path) -> None:
    class BreaksHalfway:  # a save that dies after writing part of the table (a full disk)
        def save_pretrained(self, path: str) -> None:
            Path(path).mkdir()
            (Path(path) / "model.safetensors").write_bytes(b"half")
            raise OSError(28, "No space left on device")

    folder = cache / "static" / "k"
    folder.parent.mkdir(parents=True)
    with pytest.raises(OSError, match="No space"):
        static_cache._store(BreaksHalfway(), folder)
    assert list(folder.parent.iterdir()) == []


CONCURRENT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from confroute.training.static_cache import distilled
print(distilled(sys.argv[1], int(sys.argv[2])).embedding.sum())
"""


@pytest.mark.slow  # two processes import torch and model2vec
def test_two_runs_at_once_distil_once_and_agree(cache: Path, tiny_encoder_dir: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, str(tiny_encoder_dir),
                               str(DIMS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert sum(o[1].count("distilling a static table") for o in outs) == 1
    assert outs[0][0] == outs[1][0]
    assert sorted(p.suffix for p in (cache / "static").iterdir()) == ["", ".lock"]
