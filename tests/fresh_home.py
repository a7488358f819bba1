"""Run a command as a new user would: a fresh, empty HOME (and XDG folders inside it), none of
the telemetry switches set, so whatever a library writes for itself lands where it can be seen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from confroute.privacy import ALLOW_ENV, DEFAULTS


def fresh_env(home: Path, **extra: str) -> dict[str, str]:
    """os.environ with `home` as HOME and XDG folders, and no telemetry setting of any kind."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in DEFAULTS and k != ALLOW_ENV}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"),
               XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local/share"),
               XDG_STATE_HOME=str(home / ".local/state"), HF_HUB_OFFLINE="1")
    env.update(extra)
    return env


def files_under(home: Path) -> list[str]:
    """Every file below `home`, relative, sorted."""
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


def run_fresh(home: Path, args: list[str], **extra: str) -> subprocess.CompletedProcess[str]:
    """Run `python ARGS...` (e.g. ["-m", "confroute", "route", ...]) with `fresh_env(home)`."""
    out = subprocess.run([sys.executable, *args], env=fresh_env(home, **extra),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out
