"""The container files (issue 27 item 5, issue 22 item 6): a small, non-root image of the
torch-free runtime and serve with a health check and the telemetry switches set, and a compose
file with PostgreSQL for the decision log. Linted by hadolint and parsed here; built and run
where a docker daemon answers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from test_extras import extras

from confroute.privacy import DEFAULTS
from confroute.serve.settings import TOKEN_ENV, env_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def instructions(name: str) -> list[str]:
    """The arguments of each `name` instruction in the Dockerfile (continuation lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines()
            if line.split(None, 1)[:1] == [name]]


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${X}, ${X:-default} and ${X:?error} against `env` (KeyError when required)."""
    def one(match: re.Match[str]) -> str:
        name, kind, arg = match.groups()
        if env.get(name):
            return env[name]
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if kind == "-" else ""

    return VARIABLE.sub(one, text)


def test_hadolint_passes() -> None:
    # The dev extra installs it beside this interpreter, which `make test` does not put on PATH.
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install 'confroute[dev]')")
    out = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_image_is_torch_free_non_root_checked_and_sends_nothing() -> None:
    env = dict(item.split("=", 1) for args in instructions("ENV") for item in args.split())
    assert {k: env.get(k) for k in DEFAULTS} == DEFAULTS  # the switches `import confroute` sets
    user = instructions("USER")[-1]
    assert user.isdigit() and int(user) >= 1000
    assert "/health" in instructions("HEALTHCHECK")[0]
    assert instructions("FROM")[-1].startswith("python:${PYTHON}-slim")
    assert "ARG PYTHON=3.11" in DOCKERFILE  # the Python the tests run on
    entry = json.loads(instructions("ENTRYPOINT")[0])
    assert entry[:3] == ["confroute", "serve", "/artifact"]
    installed = set(extras()["serve"])
    assert not installed & {"torch", "transformers", "pytorch-lightning", "pandas"}
    assert "ARG EXTRAS=serve" in DOCKERFILE


def test_compose_wires_the_service_the_artifact_and_postgres() -> None:
    env = {"CONFROUTE_TOKEN": "t", "POSTGRES_PASSWORD": "pw"}
    compose = yaml.safe_load(interpolate((ROOT / "compose.yaml").read_text(), env))
    service, database = compose["services"]["confroute"], compose["services"]["postgres"]
    assert service["ports"] == ["127.0.0.1:8000:8000"]
    assert any(v.endswith(":/artifact:ro") for v in service["volumes"])
    served = {TOKEN_ENV, "CONFROUTE_DECISION_LOG_URL"} | {
        env_name(route, field) for route in ("edge", "cloud")
        for field in ("base_url", "model", "api_key")}
    assert set(service["environment"]) == served
    url = urlsplit(service["environment"]["CONFROUTE_DECISION_LOG_URL"])  # a SQLAlchemy URL
    db_env = database["environment"]
    assert (url.scheme, url.hostname, url.port) == ("postgresql+psycopg", "postgres", 5432)
    assert (url.username, url.password, url.path) == (
        db_env["POSTGRES_USER"], "pw", f"/{db_env['POSTGRES_DB']}")
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(database["healthcheck"]["test"])
    with pytest.raises(KeyError, match="CONFROUTE_TOKEN"):
        interpolate((ROOT / "compose.yaml").read_text(), {"POSTGRES_PASSWORD": "pw"})


def docker_daemon() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not docker_daemon(), reason="no docker daemon answers on this machine")
def test_the_image_builds_and_answers_health(tiny_artifact: Path) -> None:  # pragma: no cover
    tag = "confroute-test:latest"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    run = subprocess.run(["docker", "run", "-d", "--rm", "-p", "127.0.0.1::8000", "-v",
                          f"{tiny_artifact}:/artifact:ro", tag], check=True, capture_output=True,
                         text=True)
    container = run.stdout.strip()
    try:
        port = subprocess.run(["docker", "port", container, "8000"], check=True, text=True,
                              capture_output=True).stdout.strip().rsplit(":", 1)[1]
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    return
            except OSError:
                time.sleep(1)
        raise AssertionError("the container's /health did not answer in 60 s")
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
