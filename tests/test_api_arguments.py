"""Every public callable (docs/api/index.md) answers each hostile argument of the table in
tests/api_table.py with confroute's own error naming the argument, never a raw TypeError,
ValueError, KeyError, ZeroDivisionError or numpy error (issue 23 item 4)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from api_table import Context, hostile_calls, said, surface

from confroute.errors import ConfrouteError
from confroute.runtime import Router

ROOT = Path(__file__).resolve().parents[1]
NEED_MORE = ("export.export", "training.fit.fit", "integrations.litellm.use_confroute",
             "mmlu_pro.load", "mmlu_pro.available_models")


@pytest.fixture(scope="module")
def ctx(tiny_artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Context:
    folder = tmp_path_factory.mktemp("api")
    artifact = folder / "artifact"
    shutil.copytree(tiny_artifact, artifact)  # set_policy's valid call rewrites it
    scratch = folder / "scratch"
    scratch.mkdir()
    return Context(Router.load(artifact), artifact, scratch)


def test_every_hostile_argument_is_named(ctx: Context) -> None:
    wrong = []
    calls = 0
    for name, arg, value, call in hostile_calls(ctx):
        calls += 1
        try:
            call()
            wrong.append(f"{name}({arg}={value!r}): accepted")
        except ConfrouteError as exc:
            if said(name, arg) not in str(exc) or "\n" in str(exc).strip():
                wrong.append(f"{name}({arg}={value!r}): {type(exc).__name__} does not name "
                             f"{said(name, arg)!r} in one line: {exc}")
        except Exception as exc:  # noqa: BLE001 - what the test is for
            wrong.append(f"{name}({arg}={value!r}): raw {type(exc).__name__}: {exc}")
    assert calls > 300
    assert not wrong, f"{len(wrong)} of {calls} mishandled:\n" + "\n".join(wrong)


def test_the_valid_calls_of_the_table_pass(ctx: Context) -> None:
    """The table's own calls are accepted, so each refusal above is the hostile value's."""
    for name, fn, valid, _ in surface(ctx):
        if name in NEED_MORE:
            continue  # a real run, training, a LiteLLM Router, MMLU-Pro files: tested elsewhere
        fn(**valid)


def test_the_docs_list_the_public_api_the_table_tests(ctx: Context) -> None:
    page = (ROOT / "docs/api/index.md").read_text()
    listed = set(re.findall(r"^\| `([\w.]+)` \|", page, flags=re.M))
    assert listed == {name for name, *_ in surface(ctx)}
