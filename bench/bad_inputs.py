"""Throw a corpus of bad (and awkward but valid) inputs at the HTTP service, the Python API and
the CLI, and count how each was handled.

Every case says what a user should get: `ok` (accepted and answered) or `error` (a clear error:
an HTTP 4xx with a JSON message, a ConfrouteError from the API, a one-line CLI error and a
non-zero exit). Outcomes are counted as: as expected, 5xx, traceback / raw exception (an
exception that is not a ConfrouteError, or a CLI traceback), wrong status (a 4xx, or a clear
error, where the input should have been accepted; or an accepted bad input).

    python bench/bad_inputs.py ARTIFACT            # HTTP + API + CLI (CLI: ~2 s per case)
    python bench/bad_inputs.py ARTIFACT --no-cli   # HTTP + API only
    python bench/bad_inputs.py ARTIFACT --show     # also print each mishandled case

The HTTP cases run against the app under uvicorn on loopback, in front of a real echo upstream
(tests/serve/upstream.py), with httpx, and a raw socket for what no client library sends (no
Host, an absolute-form target, a body that stalls); an "error NNN" case wants that status, and a
refused request that still reached the upstream counts as wrong. The CLI cases run `python -m
confroute` as a subprocess. The last line sums the mishandled cases.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serve"))
sys.path.insert(0, str(ROOT / "tests"))  # api_table: the public API and its hostile arguments

from bad_input_cases import (  # noqa: E402 - bench/ is on sys.path when this script runs
    CUT_EMOJI_JSON,
    HTTP_CASES,
    IMAGE_ONLY,
    NULL_PART,
    RAW_CASES,
    SURROGATE,
    TOOL_TURN,
)


def run_http(artifact: Path) -> list[tuple[str, str, str]]:
    """(case, expected, outcome) for each HTTP case, plus serve settings with NaN."""
    import httpx
    from upstream import echo_app, serve_in_thread

    from confroute.serve import ServeSettings, UpstreamSettings, create_app

    results = []
    echo = echo_app("echo")
    with serve_in_thread(echo) as url:
        up = UpstreamSettings(url + "/v1", "echo-model")
        extra = _settings_fields(ServeSettings, cors_origins=["http://localhost:3000"],
                                 body_timeout_s=1.0)
        app = create_app(artifact, ServeSettings(edge=up, cloud=up, **extra))
        with serve_in_thread(app) as served, httpx.Client(base_url=served, timeout=60) as client:
            for name, method, path, body, headers, expected in HTTP_CASES:
                kwargs: dict[str, Any] = {"headers": headers}
                if isinstance(body, bytes):
                    kwargs["content"] = body
                    kwargs["headers"] = {"content-type": "application/json", **headers}
                elif body is not None:
                    kwargs["json"] = body
                calls = len(echo.state.seen)
                response = client.request(method, path, **kwargs)
                outcome = _http_outcome(response.status_code, _message(response), expected)
                if expected != "ok" and len(echo.state.seen) > calls:
                    outcome = "wrong status (refused, but forwarded to the upstream)"
                results.append((name, expected, outcome))
            port = int(served.rpartition(":")[2])
            for name, raw, expected in RAW_CASES:
                status, message = _raw_request(port, raw)
                results.append((name, expected, _http_outcome(status, message, expected)))
    return results + _bad_settings(artifact)


def _bad_settings(artifact: Path) -> list[tuple[str, str, str]]:
    from starlette.testclient import TestClient

    from confroute.errors import ConfrouteError
    from confroute.serve import ServeSettings, create_app

    results = []
    for field, value in (("threshold", math.nan), ("read_timeout_s", math.nan),
                         ("connect_timeout_s", math.inf), ("body_timeout_s", 0.0),
                         ("first_content_timeout_s", math.nan), ("request_timeout_s", -1.0),
                         ("allowed_hosts", ["x.example:80"]), ("allowed_hosts", ["*"]),
                         ("cors_origins", ["http://localhost:3000/app"])):
        name = f"ServeSettings({field}={value}) then GET /health"
        try:
            app = create_app(artifact, ServeSettings(**{field: value}))
            with TestClient(app, raise_server_exceptions=False) as client:
                status = client.get("/health").status_code
            outcome = "5xx" if status >= 500 else "wrong status (accepted)"
        except ConfrouteError:
            outcome = "as expected"
        except Exception as exc:  # noqa: BLE001 - counting what escapes
            outcome = f"raw exception ({type(exc).__name__})"
        results.append((name, "error", outcome))
    return results


def _raw_request(port: int, raw: bytes) -> tuple[int, str]:
    """Send `raw` as the whole request; (status, error message or "") of the answer."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := _recv(sock):
            data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")]
            if lengths and len(body) >= lengths[0]:
                break
    if not data:
        return 0, ""
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        message = json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = ""
    return int(head.split()[1]), message


def _recv(sock: Any) -> bytes:
    try:
        return bytes(sock.recv(65536))
    except TimeoutError:  # no answer within 30 s: counted as a wrong status (0)
        return b""


def _message(response: Any) -> str:
    try:
        return str(response.json()["error"]["message"])
    except Exception:  # noqa: BLE001
        return ""


def _settings_fields(cls: Any, **wanted: Any) -> dict[str, Any]:
    """The wanted settings that this version of ServeSettings has (the base had no CORS)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in wanted.items() if k in names}


def _http_outcome(status: int, message: str, expected: str) -> str:
    if status == 0:
        return "wrong status (no answer within 30 s)"
    if status >= 500:
        return "5xx"
    if expected == "ok":
        return "as expected" if status < 400 else f"wrong status ({status})"
    if status < 400:
        return "wrong status (accepted)"
    if expected == "refused":
        return "as expected"
    wanted = expected.removeprefix("error").strip()
    if wanted and int(wanted) != status:
        return f"wrong status ({status}, expected {wanted})"
    return "as expected" if message else f"wrong status ({status}, no JSON message)"


def api_cases() -> list[tuple[str, str, Callable[[Any], Any]]]:
    """(name, expected, call(router)) for the Python API."""
    return [
        ("score lone surrogate", "error", lambda r: r.score([SURROGATE])),
        ("score surrogate in chat", "error",
         lambda r: r.score([[{"role": "user", "content": SURROGATE}]])),
        ("score null text part", "error", lambda r: r.score([NULL_PART])),
        ("score bytes prompt", "error", lambda r: r.score([b"hi"])),
        ("score None", "error", lambda r: r.score(None)),
        ("score a dict", "error", lambda r: r.score({"prompt": "hi"})),
        ("score a generator", "error", lambda r: r.score(p for p in ["hi"])),
        ("score [None]", "error", lambda r: r.score([None])),
        ("score [1.5]", "error", lambda r: r.score([1.5])),
        ("score []", "ok", lambda r: r.score([])),
        ("score tool_calls turn", "ok", lambda r: r.score([TOOL_TURN])),
        ("score image-only turn after text", "ok", lambda r: r.score([IMAGE_ONLY])),
        ("route threshold nan", "error", lambda r: r.route("hi", math.nan)),
        ("route threshold inf", "error", lambda r: r.route("hi", math.inf)),
        ("route threshold '0.5'", "error", lambda r: r.route("hi", "0.5")),
        ("route threshold numpy nan", "error", lambda r: r.route("hi", _np_nan())),
        ("route threshold numpy 0.5", "ok", lambda r: r.route("hi", _np_half())),
        ("calibrate fraction nan", "error", lambda r: r.calibrate(["a", "b"], math.nan)),
        ("calibrate fraction '0.3'", "error", lambda r: r.calibrate(["a", "b"], "0.3")),
        ("calibrate no prompts", "error", lambda r: r.calibrate([], 0.3)),
        ("calibrate surrogate", "error", lambda r: r.calibrate([SURROGATE, "b"], 0.5)),
        ("Router.load missing dir", "error", lambda r: type(r).load("/nonexistent/art")),
        ("Router.load variant 'x'", "error", lambda r: type(r).load(r.directory, "x")),
    ]


def _np_nan() -> Any:
    import numpy as np

    return np.float64("nan")


def _np_half() -> Any:
    import numpy as np

    return np.float32(0.5)


def run_api(artifact: Path) -> list[tuple[str, str, str]]:
    """The cases above, then every public callable with each hostile argument of its kind
    (tests/api_table.py: wrong types, NaN, infinities, negatives, huge, empty, bools for
    numbers, missing paths, files for folders, non-UTF-8 files) on a copy of `artifact`; a
    refusal counts as expected only when its one-line message names the argument."""
    import shutil

    from api_table import Context, hostile_calls, said

    from confroute.runtime import Router

    router = Router.load(artifact)
    results = [(name, expected, _api_outcome(lambda c=call: c(router), expected))
               for name, expected, call in api_cases()]
    with tempfile.TemporaryDirectory() as tmp:
        copy, scratch = Path(tmp) / "artifact", Path(tmp) / "scratch"
        shutil.copytree(artifact, copy)  # set_policy and write_manifest rewrite it
        scratch.mkdir()
        ctx = Context(Router.load(copy), copy, scratch)
        for name, arg, value, call in hostile_calls(ctx):
            case = f"{name}({arg}={_short(value)})"
            results.append((case, "error", _api_outcome(call, "error", said(name, arg))))
    return results


def _api_outcome(call: Callable[[], Any], expected: str, names: str = "") -> str:
    from confroute.errors import ConfrouteError

    try:
        call()
        return "as expected" if expected == "ok" else "wrong status (accepted)"
    except ConfrouteError as exc:
        if expected != "error":
            return f"wrong status ({exc})"
        if names not in str(exc) or "\n" in str(exc).strip():
            return f"wrong status (does not name {names!r} in one line: {exc})"
        return "as expected"
    except Exception as exc:  # noqa: BLE001 - counting what escapes
        return f"raw exception ({type(exc).__name__}: {exc})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@contextlib.contextmanager
def cli_files() -> Iterator[dict[str, Path]]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = {"latin1": d / "latin1.txt", "surrogate": d / "surrogate.jsonl",
                 "nullpart": d / "nullpart.jsonl", "ties": d / "ties.txt", "dir": d}
        files["latin1"].write_bytes("ok prompt\ncaf\xe9 cr\xe8me\n".encode("latin-1"))
        files["surrogate"].write_bytes(CUT_EMOJI_JSON + b"\n")
        files["nullpart"].write_text(json.dumps({"messages": NULL_PART}) + "\n")
        files["ties"].write_text("What is 2 plus 2?\n" * 10 + "".join(
            f"Prove theorem {i} about primes.\n" for i in range(10)))
        yield files


def cli_cases(art: str, f: dict[str, Path]) -> list[tuple[str, str, list[Any], bytes | None]]:
    """(name, expected, argv after `python -m confroute`, stdin)."""
    return [
        ("route argv with invalid UTF-8 bytes", "error", ["route", art, b"bad \xff bytes"], None),
        ("route stdin invalid UTF-8", "error", ["route", art], b"ok prompt\n\xff\xfe\xfd bad\n"),
        ("route stdin JSONL surrogate", "error", ["route", art], CUT_EMOJI_JSON + b"\n"),
        ("route --file latin-1", "error", ["route", art, "--file", f["latin1"]], None),
        ("route --file JSONL surrogate", "error", ["route", art, "--file", f["surrogate"]], None),
        ("route --file null text part", "error", ["route", art, "--file", f["nullpart"]], None),
        ("route --file a directory", "error", ["route", art, "--file", f["dir"]], None),
        ("route --threshold nan", "error", ["route", art, "--threshold", "nan", "hi"], None),
        ("route --threshold inf", "error", ["route", art, "--threshold", "inf", "hi"], None),
        ("calibrate --file latin-1", "error",
         ["calibrate", art, "--file", f["latin1"], "--cloud_fraction", "0.3"], None),
        ("calibrate --cloud_fraction nan", "error",
         ["calibrate", art, "--file", f["ties"], "--cloud_fraction", "nan"], None),
        ("calibrate ties 0.3", "ok",
         ["calibrate", art, "--file", f["ties"], "--cloud_fraction", "0.3"], None),
        ("serve --threshold nan", "error", ["serve", art, "--threshold", "nan", "--port", "0"],
         None),
        ("serve --read_timeout_s nan", "error",
         ["serve", art, "--read_timeout_s", "nan", "--port", "0"], None),
        # issue 23 item 3: options before, between and after positionals
        ("route options between prompts", "ok",
         ["route", art, "a", "--threshold", "0.5", "b", "--variant", "fp32"], None),
        ("route options before the artifact", "ok", ["route", "--threshold", "0.5", art, "a"],
         None),
        ("options before the command", "ok", ["--threshold", "0.5", "route", art, "a"], None),
        ("route --option=value after prompts", "ok", ["route", art, "a", "b", "--threshold=0"],
         None),
        ("route prompts after --", "ok", ["route", art, "--threshold", "0", "--", "--a", "-b"],
         None),
        ("calibrate options before the artifact", "ok",
         ["calibrate", "--cloud_fraction", "0.3", art, "--file", f["ties"]], None),
        ("serve options before the artifact", "ok",
         ["serve", "--port", "0", art, "--host", "127.0.0.1", "--print_config"], None),
        ("serve --allowed_hosts with a port", "error",
         ["serve", art, "--allowed_hosts", '["x.example:80"]', "--port", "0"], None),
        ("calibrate a stray positional", "error",
         ["calibrate", art, "extra", "--cloud_fraction", "0.3"], None),
        ("route an unknown option", "error", ["route", art, "a", "--bogus", "b"], None),
    ]


def run_cli(artifact: Path) -> list[tuple[str, str, str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    results = []
    with cli_files() as files:
        for name, expected, argv, stdin in cli_cases(str(artifact), files):
            args = [os.fsencode(sys.executable), b"-m", b"confroute"]
            args += [a if isinstance(a, bytes) else os.fsencode(str(a)) for a in argv]
            try:
                done = subprocess.run(args, input=stdin if stdin is not None else b"",
                                      capture_output=True, env=env, timeout=20)
                outcome = _cli_outcome(done.returncode, done.stderr.decode(errors="replace"),
                                       expected)
            except subprocess.TimeoutExpired:
                outcome = "wrong status (still running after 20 s: started with a bad value)"
            results.append((name, expected, outcome))
    return results


def _cli_outcome(code: int, stderr: str, expected: str) -> str:
    if "Traceback" in stderr:
        return "traceback"
    if expected == "ok":
        return "as expected" if code == 0 else f"wrong status (exit {code})"
    if code == 0:
        return "wrong status (accepted)"
    return "as expected" if stderr.strip() else "wrong status (no message)"


def summarise(part: str, results: list[tuple[str, str, str]], show: bool) -> int:
    """Print one part's counts; returns its number of mishandled cases."""
    kinds = collections.Counter(o.split(" (")[0] for _, _, o in results)
    print(f"{part:5s} {len(results):3d} cases: {kinds['as expected']:3d} as expected, "
          f"{kinds['5xx']:3d} 5xx, {kinds['traceback'] + kinds['raw exception']:3d} "
          f"traceback/raw exception, {kinds['wrong status']:3d} wrong status", flush=True)
    if show:
        for name, expected, outcome in results:
            if outcome != "as expected":
                print(f"      {name} (expected {expected}): {outcome}")
    return len(results) - kinds["as expected"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path, help="a router artifact directory")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI subprocess cases")
    parser.add_argument("--show", action="store_true", help="list each mishandled case")
    args = parser.parse_args()
    import logging

    logging.disable(logging.CRITICAL)  # the service logs each 500 with its traceback
    mishandled = summarise("HTTP", run_http(args.artifact), args.show)
    mishandled += summarise("API", run_api(args.artifact), args.show)
    if not args.no_cli:
        mishandled += summarise("CLI", run_cli(args.artifact), args.show)
    print(f"mishandled: {mishandled}")


if __name__ == "__main__":
    main()
