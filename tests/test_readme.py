"""The README is the front door (issue 22 item 2): at most 200 lines, and what it shows works.
Its commands are parsed with the docs pages' (tests/test_docs.py), its curl and SDK lines run
against a real proxy (tests/serve/test_clients.py), and its "bring your own pair" block runs
here, verbatim, on a table in the README's format made of real outcomes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def section_commands(title: str) -> list[list[str]]:
    """The command lines of the bash block under the README heading `title`."""
    body = README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```bash\n(.*?)```", body, re.DOTALL)
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()
            if shlex.split(line, comments=True)]


def test_the_readme_is_a_front_door() -> None:
    assert len(README.splitlines()) <= 200
    first = re.search(r"```bash\n(.*?)```", README, re.DOTALL)
    assert first is not None
    assert [line.split()[:2] for line in first.group(1).splitlines()] == [
        ["make", "demo"], ["make", "test"]]


def test_the_readme_links_resolve() -> None:
    links = re.findall(r"\]\(((?!https?:)[^)#]+)\)", README)
    assert links
    assert [link for link in links if not (ROOT / link).exists()] == []


@pytest.mark.slow  # trains and exports a MiniLM router (about a minute of CPU)
def test_bring_your_own_pair_runs_as_written(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    from confroute.dataset.builtin import builtin_path

    # The README's table: prompt, rating_edge, rating_cloud (0/1 correctness or judge
    # scores), split, source; here real GPT-4 / Mixtral outcomes, 150 prompts per split.
    outcomes = pandas.read_parquet(builtin_path("routellm-judge"))
    table = pandas.concat([rows.sample(150, random_state=0)
                           for _, rows in outcomes.groupby("split")])
    table[["prompt", "rating_edge", "rating_cloud", "split", "source"]].to_csv(
        tmp_path / "mine.csv", index=False)
    traffic = outcomes["prompt"].sample(120, random_state=1).str.replace("\n", " ")
    (tmp_path / "my_prompts.txt").write_text("\n".join(traffic), encoding="utf-8")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    commands = section_commands("Bring your own pair")
    assert [c[:2] for c in commands] == [["confroute", "train"], ["confroute", "export"],
                                         ["confroute", "calibrate"], ["confroute", "evaluate"]]
    printed = []
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "confroute", *command[1:]], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stderr[-3000:]}"
        printed.append(done.stdout)
    assert '"written": true' in printed[2]  # the calibrated threshold is in the artifact
    assert "APGR" in printed[3] and "router - prior" in printed[3]
    report = (tmp_path / "runs/mine/evaluation/report.md").read_text(encoding="utf-8")
    assert "APGR" in report and "prior" in report
