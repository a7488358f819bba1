"""The documentation site (issue 22 item 2): `mkdocs build --strict` passes, and what the pages
show is run or parsed here, so the docs cannot drift from the code: every `confroute ...`
command is parsed by that command's real parser, every YAML block loads (the serve.yaml and
litellm.yaml examples are loaded by what reads them), every Python block compiles, and every
script a page runs exists."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from confroute.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[1]
# The README is the site's front door: its commands are checked as the pages' are.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
# `[--flag VALUE]` and `[PROMPT ...]` in a synopsis line: optional parts, not arguments.
OPTIONAL = re.compile(r"\s\[(?:--|[A-Z])[^\]]*\]")


def blocks(language: str) -> list[tuple[str, str]]:
    """(page, text) of every fenced block in `language` on every page."""
    return [(page.name, match.group(2)) for page in PAGES
            for match in FENCE.finditer(page.read_text(encoding="utf-8"))
            if match.group(1) == language]


def shell_lines() -> list[tuple[str, str]]:
    """(page, command line) of every bash block, continuation lines joined."""
    return [(page, line.strip()) for page, text in blocks("bash")
            for line in text.replace("\\\n", " ").splitlines()
            if shlex.split(line, comments=True)]


def confroute_commands() -> list[tuple[str, str]]:
    return [(page, line) for page, line in shell_lines() if line.startswith("confroute ")]


def test_the_pages_show_commands_to_check() -> None:
    assert len(PAGES) >= 15
    assert len(confroute_commands()) >= 25
    assert len(blocks("yaml")) >= 3


@pytest.mark.parametrize("page,line", confroute_commands(), ids=lambda v: v[:60])
def test_each_confroute_command_parses(page: str, line: str, tmp_path: Path) -> None:
    words = shlex.split(OPTIONAL.sub("", line), comments=True)
    command, args = words[1], words[2:]
    assert command in COMMANDS, f"{page}: unknown command in {line!r}"
    if command == "serve" and not any(a.startswith("--") for a in args):
        return  # an artifact and nothing else: nothing to parse beyond the path
    for i, arg in enumerate(args[:-1]):  # a settings file named on a page: an empty one here
        if arg == "--config":
            args[i + 1] = str(tmp_path / "empty.yaml")
            (tmp_path / "empty.yaml").write_text("{}\n")
    build_parser(command).parse_args(args)


def test_scripts_the_pages_run_exist() -> None:
    run = [line.split()[1] for _, line in shell_lines()
           if line.startswith(("python bench/", "python scripts/"))]
    assert run
    assert [path for path in run if not (ROOT / path).is_file()] == []


def test_yaml_blocks_load() -> None:
    for page, text in blocks("yaml"):
        assert yaml.safe_load(text) is not None, page


def test_the_serve_yaml_example_loads_as_settings() -> None:
    from confroute.serve import load_settings

    [example] = [t for _, t in blocks("yaml") if t.startswith("# serve.yaml")]
    settings = load_settings(yaml.safe_load(example), environ={})
    assert all(u.base_url and u.model for u in settings.upstreams.values())


def test_the_ladder_example_is_a_ladder() -> None:
    from confroute.labelling.ladder import parse_ladder

    [example] = [t for page, t in blocks("yaml") if page == "labelling.md"]
    models = parse_ladder(yaml.safe_load(example), "docs/labelling.md")
    assert [m.name for m in models] == ["smollm2", "qwen-7b", "gpt-4o"]


def test_the_litellm_example_builds_a_router(tiny_artifact: Path) -> None:
    litellm = pytest.importorskip("litellm")
    from confroute.integrations.litellm import use_confroute

    [example] = [t for _, t in blocks("yaml") if t.startswith("# litellm.yaml")]
    config = yaml.safe_load(example)
    llm = litellm.Router(model_list=config["model_list"], **config["router_settings"])
    strategy = use_confroute(llm, tiny_artifact)
    assert set(strategy.groups.values()) == {"edge", "cloud"}


def test_python_blocks_compile() -> None:
    for page, text in blocks("python"):
        compile(text, page, "exec")


@pytest.mark.slow  # mkdocs imports every documented module (~10 s)
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f",
                          str(ROOT / "mkdocs.yml"), "-d", str(tmp_path / "site")],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "runtime" / "index.html").is_file()
    assert "Router.load" in (tmp_path / "site" / "api" / "runtime" / "index.html").read_text()
