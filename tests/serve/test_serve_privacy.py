"""Issue 27 for `confroute serve`: with a fresh HOME, a server that answers a chat request
through its upstream leaves no file there (onnxruntime 1.32 wrote a device id and a queue)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fresh_home import files_under, fresh_env
from test_process import read_address, wait_healthy
from upstream import echo_app, serve_in_thread

pytestmark = pytest.mark.slow  # starts a server process (a few seconds)


def test_serve_answering_a_request_leaves_nothing_in_home(tmp_path: Path,
                                                          tiny_artifact: Path) -> None:
    home = tmp_path / "home"
    with serve_in_thread(echo_app("edge")) as edge, serve_in_thread(echo_app("cloud")) as cloud:
        env = fresh_env(home, CONFROUTE_EDGE_BASE_URL=f"{edge}/v1", CONFROUTE_EDGE_MODEL="e",
                        CONFROUTE_CLOUD_BASE_URL=f"{cloud}/v1", CONFROUTE_CLOUD_MODEL="c")
        proc = subprocess.Popen([sys.executable, "-m", "confroute", "serve", str(tiny_artifact),
                                 "--port", "0"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            url = read_address(proc)
            wait_healthy(url)
            answer = httpx.post(f"{url}/v1/chat/completions", timeout=30, json={
                "model": "auto", "messages": [{"role": "user", "content": "Hi!"}]})
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"].endswith("says: Hi!")
    assert files_under(home) == []
