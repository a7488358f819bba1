"""The clients users have still work against the default proxy after the issue-25 guard: the
official OpenAI SDK (chat and Responses, plain and streamed, models), and every curl command and
openai SDK snippet in the README and the docs pages, run as written (only the port changes),
against the real app under uvicorn on loopback."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from upstream import echo_app, serve_in_thread

from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app

ROOT = Path(__file__).resolve().parents[2]
# The README and the documentation site: every curl either shows is run here.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def pages_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
USER = [{"role": "user", "content": "What is 2 plus 2?"}]


@contextlib.contextmanager
def default_proxy(artifact: Path) -> Iterator[str]:
    """`confroute serve ARTIFACT` on its defaults, with echo upstreams (two-model artifacts)."""
    router = Router.load(artifact)
    with contextlib.ExitStack() as stack:
        settings = ServeSettings()
        if len(router.models) == 2:  # a ladder without upstreams: /v1/route only
            urls = [stack.enter_context(serve_in_thread(echo_app(n))) for n in ("edge", "cloud")]
            settings = ServeSettings(edge=UpstreamSettings(urls[0] + "/v1", "edge-model"),
                                     cloud=UpstreamSettings(urls[1] + "/v1", "cloud-model"))
        yield stack.enter_context(serve_in_thread(create_app(router, settings)))


def test_the_openai_sdk_works_against_the_default_proxy(tiny_artifact: Path) -> None:
    with default_proxy(tiny_artifact) as url:
        sdk = openai.OpenAI(base_url=url.replace("127.0.0.1", "localhost") + "/v1",
                            api_key="unused", max_retries=0)
        answer = sdk.chat.completions.create(model="confroute", messages=USER)  # type: ignore
        assert answer.choices[0].message.content.endswith("What is 2 plus 2?")
        stream = sdk.chat.completions.create(model="confroute", messages=USER,  # type: ignore
                                             stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) \
            .endswith("What is 2 plus 2?")
        assert "confroute" in [m.id for m in sdk.models.list()]
        response = sdk.responses.create(model="confroute", input="What is 2 plus 2?")
        assert response.output_text.endswith("What is 2 plus 2?")
        events = sdk.responses.create(model="confroute", input="What is 2 plus 2?", stream=True)
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") \
            .endswith("What is 2 plus 2?")


def readme_curls() -> list[tuple[str, str]]:
    """(artifact kind, command) for each curl in the code blocks of the README and the docs
    pages: "ladder" when the block's `confroute serve` serves a ladder artifact, else "pair"."""
    found = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", pages_text(), re.DOTALL):
        kind = "ladder" if re.search(r"confroute serve \S*ladder", block) else "pair"
        found += [(kind, line) for line in block.splitlines() if line.startswith("curl ")]
    return found


def sdk_snippets() -> list[str]:
    """Each Python block of the README and the docs pages that points the openai SDK at the
    proxy."""
    return [block for block in re.findall(r"```python\n(.*?)```", pages_text(), re.DOTALL)
            if "OpenAI(base_url=" in block]


CURLS = readme_curls()


def test_the_readme_has_curl_examples_that_send_json() -> None:
    assert len(CURLS) >= 3
    assert all("-H 'Content-Type: application/json'" in command for _, command in CURLS)
    assert {"/v1/route", "/v1/chat/completions", "/v1/responses"} <= {
        re.search(r"localhost:8000(/\S*)", c).group(1) for _, c in CURLS}  # type: ignore


@pytest.mark.parametrize("snippet", sdk_snippets())
def test_each_sdk_snippet_works_against_the_default_proxy(tiny_artifact: Path,
                                                          snippet: str) -> None:
    assert "client.responses.create" in snippet
    with default_proxy(tiny_artifact) as url, contextlib.redirect_stdout(io.StringIO()) as out:
        port = url.rpartition(":")[2]
        exec(re.sub(r"(localhost|127\.0\.0\.1):8000", rf"\1:{port}", snippet), {})
    assert "says: " in out.getvalue()  # an echo upstream's answer, printed by the snippet


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("kind, command", CURLS)
def test_each_readme_curl_works_against_the_default_proxy(
        tiny_artifact: Path, utility_ladder_artifact: Path, kind: str, command: str) -> None:
    with default_proxy(utility_ladder_artifact if kind == "ladder" else tiny_artifact) as url:
        port = url.rpartition(":")[2]
        argv = shlex.split(command.replace("localhost:8000", f"localhost:{port}"))
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer.get("error") is None, answer  # (a Responses object has "error": null)
        # without the header curl -d sends a form type, which a web page could send too: 415
        bare = [a for a in argv if a not in ("-H", "Content-Type: application/json")]
        refused = json.loads(subprocess.run(bare, capture_output=True, text=True,
                                            timeout=60).stdout)
        assert refused["error"]["code"] == "unsupported_media_type"


def test_the_readme_reverse_proxy_example_loads_and_serves_its_name(tiny_artifact: Path) -> None:
    import httpx
    import yaml

    from confroute.serve import load_settings

    blocks = re.findall(r"```yaml\n(# behind a reverse proxy.*?)```", pages_text(),
                        re.DOTALL)
    assert len(blocks) == 1
    settings = load_settings(yaml.safe_load(blocks[0]), environ={})
    assert settings.allowed_hosts == ["confroute.example.com"]
    with serve_in_thread(create_app(Router.load(tiny_artifact), settings)) as url:
        for host, status in (("confroute.example.com", 200), ("localhost", 200),
                             ("other.example.com", 403)):
            assert httpx.get(url + "/health", headers={"host": host}).status_code == status
