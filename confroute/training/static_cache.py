"""The `static` family's distilled table, cached by encoder and settings.

Distilling a model2vec table from MiniLM's 30k-token vocabulary took 4 min 43 s of a 6-minute
`--preset micro` run, and its result depends only on the encoder's files and the distillation
settings. So each table is kept in `user_cache_dir()/static/<key>` (see `confroute.cache`:
$CONFROUTE_CACHE, else $XDG_CACHE_HOME/confroute, else ~/.cache/confroute), where `key` is a
sha256 over every file of the encoder folder (name and content), the settings passed to
`model2vec.distill.distill` and the model2vec version (its defaults are part of the recipe).

A table is written to a temporary folder and renamed into place (atomic on POSIX), so a reader
never sees half a table; a lock file makes a second run that starts meanwhile wait and reuse the
first run's table instead of distilling it again. An encoder given by hub name rather than as a
folder is distilled every time (its files are not known before loading it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from confroute.cache import user_cache_dir

RECIPE = 1
"""Bump when the way confroute distils changes: older cached tables then no longer match."""
log = logging.getLogger(__name__)


def distilled(source: str, dims: int | None) -> Any:
    """A `model2vec.StaticModel` distilled from encoder `source` with PCA to `dims` (None: no
    PCA) in float32, from the cache when it holds one. Raises what `distill` raises."""
    from model2vec import StaticModel

    key = cache_key(source, dims)
    if key is None:
        return _distill(source, dims)
    folder = user_cache_dir() / "static" / key
    if folder.is_dir():
        log.info("static table from the cache: %s", folder)
    else:
        from filelock import FileLock

        folder.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder.parent / f"{key}.lock")):
            if not folder.is_dir():  # another run may have written it while we waited
                _store(_distill(source, dims), folder)
    # Read back from the cache either way, so the first run trains on the very table later
    # runs will load.
    return StaticModel.from_pretrained(str(folder))


def cache_key(source: str, dims: int | None) -> str | None:
    """sha256 hex of the encoder folder's files and the settings; None unless a local folder."""
    import model2vec

    root = Path(source)
    if not root.is_dir():
        return None
    digest = hashlib.sha256(json.dumps({
        "recipe": RECIPE, "model2vec": model2vec.__version__, "pca_dims": dims,
        "quantize_to": "float32"}, sort_keys=True).encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(_file_sha256(path).encode())
    return digest.hexdigest()


def _distill(source: str, dims: int | None) -> Any:
    from model2vec.distill import distill

    log.info("distilling a static table from %s (cached for the next run)", source)
    return distill(model_name=source, pca_dims=dims, quantize_to="float32")


def _store(model: Any, folder: Path) -> None:
    """Save `model` beside `folder` and rename it into place; no partial folder is left."""
    tmp = folder.with_name(f".{folder.name}.{secrets.token_hex(4)}.tmp")
    try:
        model.save_pretrained(str(tmp))
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
