"""The served artifact: which router a service runs, named so that swapping it is atomic.

A service serves a *link*: a symbolic link (e.g. `artifacts/served`) pointing at an artifact
directory. Promoting a candidate replaces the link in one `os.replace` of a new link over the
old (rename(2) is atomic on POSIX), so a reader resolving the link at any moment finds the old
artifact or the new one, never a half-written mix; the service loads the resolved directory on
start and again on reload (SIGHUP or the admin call), and the previous target stays on disk for
a rollback. Every logged decision names its artifact by `ArtifactIdentity`: the resolved
directory's name and the sha256 of its `router.json` (which holds the sha256 of every file).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from pathlib import Path

from confroute.artifact import MANIFEST, sha256_file
from confroute.errors import ArtifactError, ConfigError


@dataclasses.dataclass(frozen=True)
class ArtifactIdentity:
    """How the log names an artifact: `id` (its directory's name) and `sha256` (of router.json)."""

    id: str
    sha256: str


def identity(directory: str | Path) -> ArtifactIdentity:
    """The identity of the artifact at `directory` (a link is resolved first).

    Raises ArtifactError when the directory has no router.json.
    """
    resolved = Path(directory).resolve()
    manifest = resolved / MANIFEST
    if not manifest.is_file():
        raise ArtifactError(f"{directory} is not a router artifact (no {MANIFEST}); make one "
                            "with `confroute export RUN_DIR --out ARTIFACT_DIR`")
    return ArtifactIdentity(resolved.name, sha256_file(manifest))


def resolve(link: str | Path) -> Path:
    """The artifact directory `link` points at now (a plain directory is its own target)."""
    return Path(link).resolve()


def promote(candidate: str | Path, link: str | Path) -> Path | None:
    """Point `link` at `candidate` atomically; returns the previous target (None: no link yet).

    The new link is written beside the old one under a temporary name and renamed over it, so
    every reader sees one artifact or the other. `candidate` is stored as an absolute path.
    Raises ConfigError when `link` exists and is not a symbolic link (a real directory cannot be
    swapped atomically: move it aside and link to it), ArtifactError when `candidate` is not an
    artifact.
    """
    link, target = Path(link), Path(candidate).resolve()
    identity(target)
    previous = None
    if link.is_symlink():
        previous = link.resolve()
    elif link.exists():
        raise ConfigError(f"{link} is a {'directory' if link.is_dir() else 'file'}, not a "
                          f"symbolic link, so it cannot be swapped atomically; move it aside and "
                          f"serve a link to it: mv {link} {link}.v1 && ln -s "
                          f"$PWD/{link}.v1 {link}")
    temporary = link.with_name(f".{link.name}.{secrets.token_hex(4)}.tmp")
    os.symlink(target, temporary, target_is_directory=True)
    try:
        os.replace(temporary, link)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_dir(link.parent)
    return previous


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # not every filesystem lets a directory be fsynced
        pass
    finally:
        os.close(fd)
