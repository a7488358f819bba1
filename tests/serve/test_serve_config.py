"""The serve settings: `upstreams:` keyed by the artifact's model names (for any K), a pair's
upstreams also from CONFROUTE_EDGE_* / CONFROUTE_CLOUD_* (the `edge` and `cloud` settings), API
keys only from the environment, and a clear error naming the key and the fix for every
mistake, whether the settings come from YAML, a dict or the command line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from confroute.errors import ConfigError
from confroute.runtime import Router
from confroute.serve import ServeSettings, UpstreamSettings, create_app, load_settings
from confroute.serve.upstreams import resolve_upstreams

SECRET = "sk-live-SECRET-abcdef123456"
CONFIG = """\
port: 0
upstreams:
  small: {base_url: "http://127.0.0.1:8080/v1", model: qwen2.5-1.5b}
  medium: {base_url: "http://[::1]:8000/v1/", model: llama-8b}
  large: {base_url: "https://api.example.com/v1", model: big-model, api_key_env: BIG_KEY}
thresholds: {small: 0.8}
"""
URL = "http://127.0.0.1:9/v1"


def ladder_values(**entries: Any) -> dict[str, Any]:
    """A settings dict whose upstreams are small/medium/large, with `entries` replacing some."""
    upstreams = {m: {"base_url": URL, "model": f"{m}-model"} for m in ("small", "medium", "large")}
    upstreams.update(entries)
    return {"upstreams": {k: v for k, v in upstreams.items() if v is not None}}


def test_a_config_file_sets_the_upstreams_and_thresholds() -> None:
    settings = load_settings(yaml.safe_load(CONFIG), environ={})
    assert settings.upstreams == {
        "small": UpstreamSettings("http://127.0.0.1:8080/v1", "qwen2.5-1.5b"),
        "medium": UpstreamSettings("http://[::1]:8000/v1/", "llama-8b"),
        "large": UpstreamSettings("https://api.example.com/v1", "big-model", "BIG_KEY")}
    assert settings.thresholds == {"small": 0.8} and settings.port == 0


@pytest.mark.parametrize("values, message", [
    (ladder_values(small={"base_url": URL, "model": "m", "api_key": SECRET}),
     "upstreams.small.api_key: API keys are never read from the config file; export the key in "
     "an environment variable and name that variable in upstreams.small.api_key_env (default "
     "CONFROUTE_SMALL_API_KEY)"),
    (ladder_values(large={"base_url": URL, "model": "m", "token": SECRET}),
     "upstreams.large.token: API keys are never read from the config file"),
    (ladder_values(small={"base_url": f"http://user:{SECRET}@127.0.0.1/v1", "model": "m"}),
     "upstreams.small.base_url holds a user name or password ('http://***@127.0.0.1/v1'); "
     "credentials never go in the config file"),
    (ladder_values(small={"url": URL, "model": "m"}),
     "unknown setting upstreams.small.url; an upstream takes base_url, model, api_key_env"),
    (ladder_values(small=URL), "upstreams.small must be a mapping with base_url, model and "
     "optionally api_key_env; found str"),
    ({"upstreams": ["small", "large"]}, "upstreams must be a mapping of the artifact's model "
     "names to upstreams"),
    (ladder_values(small={"model": "m"}), "upstreams.small.base_url is missing; set it to the "
     "upstream's API root, e.g. http://127.0.0.1:8080/v1"),
    (ladder_values(medium={"base_url": URL}), "upstreams.medium.model is missing"),
    (ladder_values(medium={"base_url": URL, "model": " "}), "upstreams.medium.model is missing"),
    (ladder_values(small={"base_url": "ftp://127.0.0.1/v1", "model": "m"}),
     "upstreams.small.base_url must be an http(s) URL such as http://127.0.0.1:8080/v1; found "
     "'ftp://127.0.0.1/v1'"),
    (ladder_values(small={"base_url": "http://", "model": "m"}),
     "upstreams.small.base_url must be an http(s) URL"),
    (ladder_values(small={"base_url": "http://127.0.0.1:port/v1", "model": "m"}),
     "upstreams.small.base_url must be an http(s) URL"),
    (ladder_values(small={"base_url": "127.0.0.1:8080/v1", "model": "m"}),
     "upstreams.small.base_url must be an http(s) URL"),
    (ladder_values(small={"base_url": "http://my host/v1", "model": "m"}),
     "upstreams.small.base_url must be an http(s) URL"),
    (ladder_values(small={"base_url": URL, "model": "m", "api_key_env": SECRET}),
     "upstreams.small.api_key_env must be the NAME of an environment variable holding the key"),
    ({**ladder_values(), "thresholds": {"small": 1.5}},
     "thresholds.small must be a finite number in [0.0, 1.0]; found 1.5"),
    ({**ladder_values(), "thresholds": {"small": float("nan")}}, "thresholds.small must be"),
])
def test_bad_upstreams_are_refused_naming_the_key(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(values, environ={})
    assert message in str(error.value), str(error.value)
    assert SECRET not in str(error.value)


@pytest.mark.parametrize("values, environ, message", [
    (ladder_values(huge={"base_url": URL, "model": "m"}), {},
     "upstreams.huge: the artifact has no model 'huge'; its models are small, medium, large "
     "(cheapest first): use one of those names or remove the entry"),
    (ladder_values(large=None), {},
     "upstreams has no entry for 'large', the artifact's most expensive model: requests fall "
     "back up the ladder to it, so it needs one; add upstreams.large with base_url and model"),
    ({"upstreams": {"small": {"base_url": URL, "model": "m"}}}, {},
     "upstreams has no entry for 'large'"),
    ({**ladder_values(), "thresholds": {"huge": 0.5}}, {},
     "thresholds.huge: the artifact has no model 'huge'"),
    ({**ladder_values(), "threshold": 0.5}, {},
     "threshold is the two-model threshold; this artifact routes among small, medium, large: "
     "set per-model thresholds instead, e.g. thresholds: {small: 0.8}"),
    (ladder_values(), {"CONFROUTE_EDGE_BASE_URL": URL, "CONFROUTE_EDGE_MODEL": "m"},
     "the edge upstream is set (edge.base_url, or CONFROUTE_EDGE_BASE_URL), but this artifact "
     "routes among 3 models (small, medium, large): configure upstreams.<model> in the --config "
     "file instead, and unset CONFROUTE_EDGE_BASE_URL"),
    (ladder_values(large={"base_url": URL, "model": "m", "api_key_env": "BIG_KEY"}), {},
     "upstreams.large.api_key_env names BIG_KEY, which is not set (or empty); export "
     "BIG_KEY=<key>, or remove api_key_env for an upstream that needs no key"),
    (ladder_values(large={"base_url": URL, "model": "m", "api_key_env": "BIG_KEY"}),
     {"BIG_KEY": ""}, "upstreams.large.api_key_env names BIG_KEY, which is not set"),
])
def test_settings_that_do_not_fit_the_artifact_are_refused(
        ladder_router: Router, values: dict, environ: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        create_app(ladder_router, load_settings(values, environ=environ), environ=environ)
    assert message in str(error.value), str(error.value)


def test_keys_come_from_the_environment_only(ladder_router: Router) -> None:
    values = ladder_values(large={"base_url": URL, "model": "m", "api_key_env": "BIG_KEY"})
    environ = {"CONFROUTE_SMALL_API_KEY": SECRET, "BIG_KEY": SECRET + "-big"}
    app = create_app(ladder_router, load_settings(values, environ=environ), environ=environ)
    upstreams = app.state.service.upstreams
    assert {name: u.api_key for name, u in upstreams.items()} == \
        {"small": SECRET, "medium": "", "large": SECRET + "-big"}
    assert SECRET not in repr(upstreams)


@pytest.fixture()
def serve_logger() -> Iterator[None]:
    """`confroute serve` sets up its log handler before it fails: put the logger back."""
    logger = logging.getLogger("confroute")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers, logger.propagate, logger.level = saved


def test_the_cli_reads_upstreams_from_the_config_file(tiny_ladder_artifact: Path,
                                                      tmp_path: Path) -> None:
    from confroute.cli import build_parser
    from confroute.cli.serve import before_parse, settings_from_args

    config = tmp_path / "serve.yaml"
    config.write_text(CONFIG)
    parser = build_parser("serve")
    argv = [str(tiny_ladder_artifact), "--config", str(config), "--thresholds",
            "{medium: 0.4}", "--fallback", "false"]
    before_parse(parser, argv)
    settings = settings_from_args(parser.instantiate(parser.parse_args(argv)))
    assert settings.upstreams["large"] == UpstreamSettings("https://api.example.com/v1",
                                                           "big-model", "BIG_KEY")
    assert (settings.thresholds, settings.fallback) == ({"medium": 0.4}, False)


@pytest.mark.parametrize("text, artifact, message", [
    (f"upstreams:\n  small: {{base_url: '{URL}', model: m, api_key: {SECRET}}}\n", False,
     "upstreams.small.api_key: API keys are never read from the config file"),
    (f"upstreams:\n  small: {{base_url: 'http://u:{SECRET}@h/v1', model: m}}\n", False,
     "upstreams.small.base_url holds a user name or password"),
    ("upstreams:\n  small: {base_url: 'ftp://h/v1', model: m}\n", False,
     "upstreams.small.base_url must be an http(s) URL"),
    (f"upstreams:\n  large: {{base_url: '{URL}', model: m}}\n  huge: {{base_url: '{URL}', "
     "model: m}\n", True, "upstreams.huge: the artifact has no model 'huge'"),
    (f"upstreams:\n  small: {{base_url: '{URL}', model: m}}\n", True,
     "upstreams has no entry for 'large'"),
])
@pytest.mark.parametrize("form", ["--config", "--config="])
@pytest.mark.usefixtures("serve_logger")
def test_a_bad_config_file_is_one_line_naming_the_key(
        tiny_ladder_artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        text: str, artifact: bool, message: str, form: str) -> None:
    from confroute.cli import main

    config = tmp_path / "serve.yaml"
    config.write_text(text)
    flags = [f"--config={config}"] if form.endswith("=") else ["--config", str(config)]
    assert main(["serve", str(tiny_ladder_artifact), *flags, "--port", "0"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("confroute serve: error: ") and "\n" not in err, err
    assert message in err, err
    if not artifact:  # found in the file, before the artifact is loaded
        assert f"config file {config}: " in err
    assert SECRET not in err and "listening" not in captured.out


def test_help_shows_a_ladder_config_that_loads(capsys: pytest.CaptureFixture[str]) -> None:
    from confroute.cli import main

    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "api_key_env" in out and "--upstreams" in out and "--thresholds" in out
    lines = out[out.index("  upstreams:\n"):].splitlines()
    example = "\n".join(line[2:] for line in lines[:lines.index("")])
    settings = load_settings(yaml.safe_load(example), environ={})
    assert list(settings.upstreams) == ["small", "medium", "large"]
    assert settings.upstreams["large"].api_key_env == "OPENAI_API_KEY"
    assert settings.thresholds == {"small": 0.8}


def test_the_serving_page_example_loads() -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
    blocks = re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.DOTALL)
    examples = [b for b in blocks if b.startswith("# serve.yaml")]
    assert len(examples) == 1, "the serving page has one serve.yaml example"
    settings = load_settings(yaml.safe_load(examples[0]), environ={})
    assert len(settings.upstreams) >= 3
    assert all(u.base_url and u.model for u in settings.upstreams.values())


def test_settings_objects_check_their_upstreams_too() -> None:
    with pytest.raises(ConfigError, match="upstreams.small.base_url is missing"):
        ServeSettings(upstreams={"small": UpstreamSettings(model="m")})
    # a mapping is validated as an upstream, so what it lacks is named; anything else is refused
    with pytest.raises(ConfigError, match="upstreams.small.model is missing"):
        ServeSettings(upstreams={"small": {"base_url": URL}})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="upstreams.small must be a mapping with base_url"):
        ServeSettings(upstreams={"small": URL})  # type: ignore[dict-item]
    with pytest.raises(ConfigError, match="edge.api_key: API keys are never read from the "
                       "config file; .* edge.api_key_env \\(default CONFROUTE_EDGE_API_KEY\\)"):
        ServeSettings(edge={"base_url": URL, "api_key": SECRET})  # type: ignore[arg-type]


@pytest.mark.parametrize("build, message", [
    (lambda: UpstreamSettings("ftp://h/v1", "m"), "base_url must be an http(s) URL such as"),
    (lambda: UpstreamSettings(URL, "m", SECRET), "api_key_env must be the NAME of an environment"),
    (lambda: ServeSettings(port=True), "port must be an integer in [0, 65535] (0 = any free"),
    (lambda: ServeSettings(max_prompts=2.5), "max_prompts must be an integer >= 1; found 2.5"),
    (lambda: ServeSettings(prot=1), "unknown setting prot"),
    (lambda: ServeSettings(variant="fp16"),
     "variant: input should be 'auto', 'fp32' or 'int8'; found 'fp16'"),
    (lambda: ServeSettings(upstreams={"small": {"base_url": URL, "model": "m", "api_key_env": 7}}),
     "upstreams.small.api_key_env: input should be a valid string; found 7"),
    (lambda: ServeSettings(log={"queue_size": 0}), "log.queue_size must be an integer >= 1"),
    (lambda: ServeSettings(host=""), "host must be an address or a name (e.g. 127.0.0.1, or "
     "0.0.0.0 for every interface); found ''"),
    (lambda: ServeSettings(host=" localhost"), "host must be an address or a name"),
    (lambda: ServeSettings(token=f"{SECRET} "), "token ($CONFROUTE_TOKEN) is empty or holds "
     "spaces or line breaks, so no client could send it; set it to the token alone"),
    (lambda: load_settings({}, environ={"CONFROUTE_TOKEN": " "}), "no client could send it"),
    (lambda: load_settings({"cors_origins": "*"}, environ={}),
     "cors_origins: input should be a valid list; found '*'; write a list: "
     "`cors_origins: ['*']`"),
])
def test_settings_built_in_python_are_validated_naming_the_key(build: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        build()
    assert message in str(error.value) and SECRET not in str(error.value), str(error.value)


def test_the_environment_fills_only_what_the_settings_leave_unset(
        monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"CONFROUTE_EDGE_BASE_URL": URL, "CONFROUTE_EDGE_MODEL": "env-model",
               "CONFROUTE_JUDGE_MODEL": "", "CONFROUTE_TOKEN": "tok", "CONFROUTE_PORT": "1",
               "CONFROUTE_CACHE": "/elsewhere"}
    settings = load_settings({"edge": {"model": "file-model"}}, environ=environ)
    assert (settings.edge.base_url, settings.edge.model) == (URL, "file-model")  # the file wins
    assert settings.judge.model is None  # an empty variable counts as unset
    assert settings.token == "tok" and settings.port == 8000  # only the variables named
    monkeypatch.setenv("CONFROUTE_TOKEN", "from-os")
    monkeypatch.setenv("CONFROUTE_CLOUD_MODEL", "from-os")
    assert load_settings({}, environ={}).token is None  # the environment given, only
    assert load_settings({}).token == "from-os" and load_settings({}).cloud.model == "from-os"
    assert ServeSettings().token is None and ServeSettings().cloud.model is None  # no env read


# --- a pair: its two upstreams from the environment, or from upstreams like any artifact ------

EDGE_KEY, TOKEN = "sk-edge-SECRET-1111", "tok-SECRET-3333"
PAIR_ENV = {"CONFROUTE_EDGE_BASE_URL": "http://127.0.0.1:1/v1", "CONFROUTE_EDGE_MODEL": "small",
            "CONFROUTE_EDGE_API_KEY": EDGE_KEY, "CONFROUTE_CLOUD_BASE_URL": URL,
            "CONFROUTE_CLOUD_MODEL": "big", "CONFROUTE_TOKEN": TOKEN}


@pytest.mark.parametrize("models", [["edge", "cloud"], ["local-8b", "api-large"]])
def test_a_pairs_environment_sets_the_upstreams_of_its_two_models(models: list[str]) -> None:
    settings = load_settings({"port": 0}, environ=PAIR_ENV)
    assert settings.edge.model == "small" and settings.token == TOKEN
    upstreams = resolve_upstreams(settings, models, environ=PAIR_ENV)
    assert list(upstreams) == models
    assert [u.model for u in upstreams.values()] == ["small", "big"]
    assert upstreams[models[0]].api_key == EDGE_KEY
    assert EDGE_KEY not in repr(upstreams) and TOKEN not in repr(settings)


def test_a_pair_may_use_upstreams_keyed_by_its_model_names() -> None:
    values = {"upstreams": {"edge": {"base_url": URL, "model": "e"},
                            "cloud": {"base_url": URL, "model": "c"}}}
    environ = {"CONFROUTE_EDGE_API_KEY": EDGE_KEY}
    upstreams = resolve_upstreams(load_settings(values, environ={}), ["edge", "cloud"], environ)
    assert {m: (u.model, u.api_key) for m, u in upstreams.items()} == {
        "edge": ("e", EDGE_KEY), "cloud": ("c", "")}


@pytest.mark.parametrize("values, env, message", [
    ({"edge": {"base_url": "ftp://x"}}, {}, "http\\(s\\) URL"),
    ({"prot": 1}, {}, "unknown setting"),
    ({"max_body_bytes": 0}, {}, "max_body_bytes must be >= 1"),
    ({"threshold": 2.0}, {}, "threshold must be a finite number in"),
    ({}, {"CONFROUTE_CLOUD_BASE_URL": URL}, "CONFROUTE_CLOUD_MODEL"),
    ({}, {"CONFROUTE_EDGE_BASE_URL": URL, "CONFROUTE_EDGE_MODEL": "m"},
     "upstreams has no entry for 'cloud', the artifact's most expensive model: requests fall "
     "back up the ladder to it, so it needs one; add upstreams.cloud with base_url and model "
     "\\(CONFROUTE_CLOUD_BASE_URL and _MODEL, or cloud.base_url\\)"),
    ({"upstreams": {"cloud": {"base_url": URL, "model": "m"}}},
     {"CONFROUTE_CLOUD_BASE_URL": URL, "CONFROUTE_CLOUD_MODEL": "m"},
     "both cloud \\(CONFROUTE_CLOUD_BASE_URL\\) and upstreams.cloud configure the upstream"),
    ({"upstreams": {"huge": {"base_url": URL, "model": "m"}}}, {},
     "upstreams.huge: the artifact has no model 'huge'; its models are edge, cloud"),
])
def test_bad_pair_settings_are_refused(values: dict, env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_upstreams(load_settings(values, environ=env), ["edge", "cloud"], environ=env)


def test_pair_settings_refused_for_k_models_name_the_fix(ladder_router: Router) -> None:
    settings = load_settings({}, environ={"CONFROUTE_EDGE_BASE_URL": URL,
                                          "CONFROUTE_EDGE_MODEL": "m"})
    with pytest.raises(ConfigError, match="routes among 3 models .*configure upstreams.<model>"):
        create_app(ladder_router, settings, environ={})


def test_cli_settings_come_from_yaml_then_flags(tiny_artifact: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from jsonargparse import ArgumentError

    from confroute.cli import build_parser
    from confroute.cli.serve import settings_from_args

    parser = build_parser("serve")

    def parse(argv: list[str]) -> object:
        return parser.instantiate(parser.parse_args(argv))

    monkeypatch.setenv("CONFROUTE_CLOUD_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("CONFROUTE_CLOUD_MODEL", "big")
    config = tmp_path / "serve.yaml"
    config.write_text("port: 0\nbatch_max: 8\nthreshold: 0.2\n"
                      "edge: {base_url: 'http://127.0.0.1:8/v1', model: small}\n")
    args = parse([str(tiny_artifact), "--config", str(config), "--threshold", "0.3",
                  "--fallback", "false"])
    settings = settings_from_args(args)
    assert (settings.port, settings.batch_max, settings.threshold) == (0, 8, 0.3)
    assert (settings.edge.model, settings.cloud.model, settings.fallback) == ("small", "big", False)
    config.write_text("bach_max: 8\n")
    with pytest.raises(ArgumentError, match="bach_max"):
        settings_from_args(parse([str(tiny_artifact), "--config", str(config)]))
