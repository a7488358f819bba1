"""The runtime must not pull in torch or transformers (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_runtime_imports_neither_torch_nor_transformers(tiny_artifact: Path) -> None:
    code = (
        "import sys\n"
        "from confroute.runtime import Router\n"
        f"r = Router.load({str(tiny_artifact)!r})\n"
        "r.route('hello')\n"
        "bad = [m for m in ('torch', 'transformers', 'pytorch_lightning', 'datasets', 'pandas')"
        " if m in sys.modules]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
