"""A process that writes decisions to a log under load and prints each acknowledged request id.

    python tests/traffic/killed_writer.py URL

Two threads record entries as fast as the log accepts them; every id the writer reports as
committed is written to stdout as `ack <id>` (one os.write per line, atomic on a pipe). The test
kills it with SIGKILL mid-stream and then looks for every acknowledged id in the database.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from logged import entry  # noqa: E402

from confroute.traffic.log import DecisionLog, LogSettings  # noqa: E402


def acknowledge(items: list[tuple[str, str]]) -> None:
    lines = "".join(f"ack {request_id}\n" for kind, request_id in items if kind == "decision")
    data = lines.encode()
    while data:  # a short write to a pipe leaves the rest for the next call
        data = data[os.write(1, data):]


def load(log: DecisionLog, prefix: str) -> None:
    i = 0
    while True:
        log.record(entry(f"{prefix}{i}", text=f"prompt {prefix}{i}"))
        i += 1
        if i % 200 == 0:
            time.sleep(0.001)  # let the writer thread run: load, not a busy loop


def main() -> None:
    log = DecisionLog.open(LogSettings(url=sys.argv[1], batch_size=64, flush_interval_s=0.005,
                                       queue_size=5000), on_written=acknowledge)
    os.write(1, b"ready\n")
    threads = [threading.Thread(target=load, args=(log, p), daemon=True) for p in ("a", "b")]
    for thread in threads:
        thread.start()
    time.sleep(3600)  # until killed


if __name__ == "__main__":
    main()
