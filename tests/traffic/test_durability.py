"""A record acknowledged as written survives kill -9 of the writing process: 5 runs on SQLite
and 5 on a real PostgreSQL server, each killed mid-stream with SIGKILL after at least 500
acknowledgements; every acknowledged id must be in the database."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from logged import rows

SCRIPT = Path(__file__).resolve().parent / "killed_writer.py"
MIN_ACKS = 500


def run_and_kill(url: str, min_acks: int = MIN_ACKS, delay_s: float = 0.0,
                 timeout_s: float = 120.0) -> dict[str, int]:
    """Start the writer process, SIGKILL it `delay_s` after `min_acks` ids are acknowledged,
    and count the acknowledged ids found in the database."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, str(SCRIPT), url], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    assert process.stdout is not None
    output, acks = b"", 0
    deadline = time.monotonic() + timeout_s
    try:
        while acks < min_acks:
            if time.monotonic() > deadline or process.poll() is not None:
                raise AssertionError(f"writer gave {acks} acknowledgements; stderr: "
                                     f"{process.stderr.read().decode() if process.stderr else ''}")
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                output += os.read(process.stdout.fileno(), 1 << 16)
                acks = output.count(b"\nack ") + output.startswith(b"ack ")
        time.sleep(delay_s)  # different runs land at different points of a commit
        process.send_signal(signal.SIGKILL)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    output += rest
    complete = output[:output.rfind(b"\n") + 1].decode()  # a cut last line was never printed
    acknowledged = {line[4:] for line in complete.splitlines() if line.startswith("ack ")}
    found = {r["request_id"] for r in rows(url)}
    return {"acknowledged": len(acknowledged), "found": len(found),
            "missing": len(acknowledged - found)}


@pytest.mark.slow
@pytest.mark.parametrize("run", range(5))
def test_acknowledged_records_survive_kill_9(db_url: str, run: int) -> None:
    figures = run_and_kill(db_url, delay_s=(0.0, 0.003, 0.007, 0.013, 0.029)[run])
    print(f"kill -9 run {run} on {db_url.split(':')[0]}: {figures}")
    assert figures["acknowledged"] >= MIN_ACKS
    assert figures["missing"] == 0, figures
