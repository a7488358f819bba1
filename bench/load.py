"""Load benchmark for `confroute serve`, run from a second process on loopback.

Starts an echo upstream (`python tests/serve/upstream.py`, the test double) and one
`confroute serve` process per micro-batching setting, then, from this process:
  1. sends N /v1/route requests at concurrency C (one real prompt each) and prints throughput,
     p50/p99 latency, the error count, and the server's CPU time per request (read from /proc:
     unlike throughput, it barely depends on what else the machine is running);
  2. measures the proxy's added latency: the same chat completion sent sequentially straight to
     the echo upstream and through the proxy (plain, and streamed: time to the last byte).

The load generator shares the machine with the server: on a small machine both compete for the
same cores, so throughput is a lower bound on what the server alone could do.

The decision log: every setup runs with it off; the first setup also with it on (a SQLite file
in a temporary directory, text off, the default settings), alternating off/on `--log-rounds`
times, and the table ends with the ratio of the medians (the goal: log on >= 90% of the routes/s
without it).

    python bench/load.py runs/demo/artifact --requests 10000 --concurrency 32
    python bench/load.py ARTIFACT --requests 2000 --concurrency 16 --setups 1/1/auto,32/1/1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from gemm import cpu_summary  # bench/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "confroute" / "dataset" / "builtin" / "routellm_judge.parquet"
CHAT = {"model": "auto", "max_tokens": 16,
        "messages": [{"role": "user", "content": "What is the capital of France? Answer briefly."}]}


def main() -> None:
    args = parse_args()
    prompts = load_prompts(args.prompts_from, args.max_prompt_chars)
    print(f"artifact {args.artifact}; {len(prompts)} distinct real prompts (median "
          f"{int(np.median([len(p) for p in prompts]))} chars); CPU: {cpu_summary()}, "
          f"{os.cpu_count()} cores; python {platform.python_version()}", flush=True)
    rows, overhead = [], []
    with process([sys.executable, str(ROOT / "tests/serve/upstream.py"), "--name", "edge"],
                 r"(http://\S+)") as (echo, _), tempfile.TemporaryDirectory() as tmp:
        for batch_max, threads, workers in args.setups:
            flags = ["--batch_max", str(batch_max), "--threads",
                     "null" if threads == "auto" else threads]
            flags += ["--score_workers", workers] if workers != "auto" else []
            first = (batch_max, threads, workers) == args.setups[0]
            logs = ["off", "on"] * args.log_rounds if first else ["off"]
            for i, log in enumerate(logs):
                log_flags = ["--log.enabled", "false"] if log == "off" else [
                    "--log.url", f"sqlite:///{tmp}/load-{i}.db"]
                with serve(args.artifact, echo, flags + log_flags) as (url, pid):
                    run = asyncio.run(load(url, pid, prompts, args.requests, args.concurrency,
                                           args.warmup))
                    rows.append({"batch_max": batch_max, "threads": threads,
                                 "workers": workers, "log": log, **run})
                    print(f"done: {rows[-1]}", flush=True)
                    if first and i == 0:
                        overhead = asyncio.run(proxy_overhead(url, pid, echo,
                                                              args.proxy_requests))
    print_load(rows, args.requests, args.concurrency)
    print_log_ratio(rows)
    print_overhead(overhead, args.proxy_requests)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", nargs="?", default=None,
                        help="router artifact (default runs/demo/artifact)")
    parser.add_argument("--requests", type=int, default=10_000, help="N /v1/route requests")
    parser.add_argument("--concurrency", type=int, default=32, help="C requests in flight")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured requests first")
    parser.add_argument("--setups", default="1/1/auto,1/auto/1,32/1/1",
                        help="server setups to compare, BATCH_MAX/THREADS/WORKERS, comma-"
                        "separated (batch_max 1 = no micro-batching; threads = onnxruntime "
                        "threads per call, auto = all cores; workers = scoring calls at once, "
                        "auto = one per core)")
    parser.add_argument("--proxy-requests", type=int, default=300,
                        help="sequential chat completions per proxy-overhead measurement "
                        "(made against the first setup)")
    parser.add_argument("--log-rounds", type=int, default=2,
                        help="off/on runs of the decision log, alternating (first setup)")
    parser.add_argument("--prompts-from", type=Path, default=PROMPTS,
                        help="parquet file with a 'prompt' column")
    parser.add_argument("--max-prompt-chars", type=int, default=4000)
    args = parser.parse_args()
    args.artifact = Path(args.artifact or ROOT / "runs" / "demo" / "artifact")
    if not (args.artifact / "router.json").is_file():
        parser.error(f"{args.artifact} is not a router artifact; make one with `confroute "
                     "train` + `confroute export`, or pass its directory")
    try:
        args.setups = [(int(b), t, w) for b, t, w in (x.split("/")
                                                       for x in args.setups.split(","))]
    except ValueError:
        parser.error(f"--setups takes BATCH_MAX/THREADS/WORKERS like 32/1/1; found {args.setups}")
    return args


def load_prompts(path: Path, max_chars: int) -> list[str]:
    import pyarrow.parquet as pq

    prompts = [p for p in pq.read_table(path, columns=["prompt"]).column("prompt").to_pylist()
               if isinstance(p, str) and p.strip() and len(p) <= max_chars]
    return sorted(set(prompts))


@contextmanager
def process(command: list[str], ready: str, env: dict[str, str] | None = None
            ) -> Iterator[tuple[str, int]]:
    """Run a server process; yield the URL it prints on its first matching line, and its pid."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        for line in proc.stdout:  # type: ignore[union-attr]
            if match := re.search(ready, line):
                yield match.group(1), proc.pid
                break
        else:
            raise SystemExit(f"{command[:4]} exited before it was ready (code {proc.wait()})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def serve(artifact: Path, upstream: str, flags: list[str]) -> Iterator[tuple[str, int]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "CONFROUTE_EDGE_BASE_URL": upstream, "CONFROUTE_EDGE_MODEL": "edge-model",
           "CONFROUTE_CLOUD_BASE_URL": upstream, "CONFROUTE_CLOUD_MODEL": "cloud-model"}
    command = [sys.executable, "-m", "confroute", "serve", str(artifact), "--port", "0",
               "--access_log", "false", "--log_level", "warning", *flags]
    with process(command, r"listening on (http://\S+)", env) as (url, pid):
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, pid


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(url: str, pid: int, prompts: list[str], total: int, concurrency: int,
               warmup: int) -> dict[str, float]:
    """N requests at concurrency C: C keep-alive connections, each sending its next request
    when the last one's answer is in."""
    bodies = [json.dumps({"prompt": p}).encode() for p in prompts]
    host, port = url.removeprefix("http://").rsplit(":", 1)
    await _drive(host, int(port), bodies, warmup, concurrency)
    started, cpu, own = time.perf_counter(), cpu_seconds(pid), time.process_time()
    latencies, errors = await _drive(host, int(port), bodies, total, concurrency)
    elapsed = time.perf_counter() - started
    cpu, own = cpu_seconds(pid) - cpu, time.process_time() - own
    ms = np.array(latencies) * 1000
    return {"throughput": len(latencies) / elapsed, "p50": float(np.percentile(ms, 50)),
            "p99": float(np.percentile(ms, 99)), "errors": errors, "seconds": elapsed,
            "cpu_ms": 1000 * cpu / total, "client_cpu_ms": 1000 * own / total}


async def _drive(host: str, port: int, bodies: list[bytes], total: int, concurrency: int
                 ) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal errors
        connection = None
        for i in counter:
            started = time.perf_counter()
            try:
                connection = connection or await asyncio.open_connection(host, port)
                status, body = await _post(*connection, host, bodies[i % len(bodies)])
                ok = status == 200 and b'"route"' in body
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok, connection = False, None
            latencies.append(time.perf_counter() - started)
            errors += not ok
        if connection:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive POST to /v1/route. A bare client: httpx would cost the shared
    CPU more than the server does, and the point is to measure the server."""
    writer.write(b"POST /v1/route HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body))
    head = await reader.readuntil(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if match is None:
        raise ValueError("response without Content-Length")
    return int(head[9:12]), await reader.readexactly(int(match.group(1)))


async def proxy_overhead(proxy: str, pid: int, upstream: str, n: int
                         ) -> list[dict[str, float | str]]:
    """Sequential chat completions, direct and through the proxy in turn (so both see the same
    background load); p50/p99 in ms to the last byte, and the proxy's CPU time per request."""
    rows = []
    async with httpx.AsyncClient(timeout=60) as client:
        for stream in (False, True):
            body = {**CHAT, "stream": stream}
            direct: list[float] = []
            routed: list[float] = []
            cpu = 0.0
            for i in range(n + 20):  # the first 20 warm the connection pools
                direct_ms = await _timed(client, f"{upstream}/chat/completions", body)
                before = cpu_seconds(pid)
                routed_ms = await _timed(client, f"{proxy}/v1/chat/completions", body)
                if i >= 20:
                    direct.append(direct_ms)
                    routed.append(routed_ms)
                    cpu += cpu_seconds(pid) - before
            rows.append({"mode": "streamed" if stream else "plain",
                         "direct_p50": statistics.median(direct),
                         "proxy_p50": statistics.median(routed),
                         "direct_p99": float(np.percentile(direct, 99)),
                         "proxy_p99": float(np.percentile(routed, 99)),
                         "cpu_ms": 1000 * cpu / n})
    return rows


async def _timed(client: httpx.AsyncClient, url: str, body: dict) -> float:
    started = time.perf_counter()
    async with client.stream("POST", url, json=body) as reply:
        async for _ in reply.aiter_bytes():
            pass
        if reply.status_code != 200:
            raise SystemExit(f"{url} answered {reply.status_code}")
    return (time.perf_counter() - started) * 1000


def print_load(rows: list[dict], total: int, concurrency: int) -> None:
    print(f"\nPOST /v1/route: {total} requests at concurrency {concurrency}, one prompt each")
    print("(server CPU ms/req: the server process's CPU time over the run / N; client: this "
          "process's)")
    print(f"| {'batch_max':>9} | {'threads':>7} | {'workers':>7} | {'log':>3} | {'req/s':>7} "
          f"| {'p50 ms':>7} "
          f"| {'p99 ms':>7} "
          f"| {'errors':>6} | {'server CPU ms/req':>17} | {'client CPU ms/req':>17} "
          f"| {'wall s':>6} |")
    print("|" + "|".join("-" * (w + 2) for w in (9, 7, 7, 3, 7, 7, 7, 6, 17, 17, 6)) + "|")
    for r in rows:
        print(f"| {r['batch_max']:>9} | {r['threads']:>7} | {r['workers']:>7} | {r['log']:>3} | "
              f"{r['throughput']:>7.1f} | "
              f"{r['p50']:>7.2f} | {r['p99']:>7.2f} | {r['errors']:>6} | {r['cpu_ms']:>17.2f} | "
              f"{r['client_cpu_ms']:>17.2f} | {r['seconds']:>6.1f} |")


def print_log_ratio(rows: list[dict]) -> None:
    """Median routes/s with the decision log on over off, for the first setup's runs."""
    first = {k: rows[0][k] for k in ("batch_max", "threads", "workers")}
    same = [r for r in rows if all(r[k] == v for k, v in first.items())]
    rate = {log: statistics.median(r["throughput"] for r in same if r["log"] == log)
            for log in ("off", "on") if any(r["log"] == log for r in same)}
    if len(rate) == 2:
        print(f"\ndecision log on / off, median routes/s over {len(same) // 2} run(s) each: "
              f"{rate['on']:.1f} / {rate['off']:.1f} = {rate['on'] / rate['off']:.1%} "
              f"(goal >= 90%)")


def print_overhead(rows: list[dict], n: int) -> None:
    print(f"\nProxy overhead: {n} sequential chat completions each way, alternating, to the "
          "last byte (proxy = score + forward + relay)")
    print(f"| {'mode':>8} | {'direct p50':>10} | {'proxy p50':>10} | {'added p50':>10} | "
          f"{'direct p99':>10} | {'proxy p99':>10} | {'proxy CPU ms/req':>16} |")
    print("|" + "|".join("-" * (w + 2) for w in (8, 10, 10, 10, 10, 10, 16)) + "|")
    for r in rows:
        print(f"| {r['mode']:>8} | {r['direct_p50']:>8.2f}ms | {r['proxy_p50']:>8.2f}ms | "
              f"{r['proxy_p50'] - r['direct_p50']:>8.2f}ms | {r['direct_p99']:>8.2f}ms | "
              f"{r['proxy_p99']:>8.2f}ms | {r['cpu_ms']:>16.2f} |")


if __name__ == "__main__":
    main()
