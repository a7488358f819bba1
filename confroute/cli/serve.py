"""confroute serve: serve a router artifact over HTTP.
POST /v1/route; POST /v1/chat/completions (scored, then forwarded to the chosen model's
upstream, falling back up the ladder); GET /v1/models, /health, /metrics. The flags are
ServeSettings' fields; --config reads them from YAML. POST bodies must be sent as
Content-Type: application/json. On the loopback default no web page can use the service
(only loopback Host names and JSON bodies, no foreign Origin), but other users and processes
on this machine can: on a shared machine set CONFROUTE_TOKEN.

Upstreams are keyed by the artifact's model names (`confroute route ARTIFACT hi` shows them),
one per model in the --config file; each API key comes from the environment variable its
api_key_env names (default CONFROUTE_<MODEL>_API_KEY), never from the file. The top (most
expensive) model needs an upstream; a request falls back up the ladder:
  upstreams:
    small:  {base_url: "http://127.0.0.1:8080/v1", model: qwen2.5-1.5b-instruct}
    medium: {base_url: "http://10.0.0.5:8000/v1", model: llama-3.1-8b, api_key_env: VLLM_KEY}
    large:  {base_url: "https://api.openai.com/v1", model: gpt-4o, api_key_env: OPENAI_API_KEY}
  thresholds: {small: 0.8}      # optional: replaces the artifact's threshold for `small`

A pair (edge, cloud) may take its two upstreams from the environment instead:
  CONFROUTE_EDGE_BASE_URL, CONFROUTE_EDGE_MODEL, CONFROUTE_EDGE_API_KEY
  CONFROUTE_CLOUD_BASE_URL, CONFROUTE_CLOUD_MODEL, CONFROUTE_CLOUD_API_KEY
CONFROUTE_TOKEN: when set, clients must send 'Authorization: Bearer <token>'.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

from confroute.config import build, to_dict

HELP = "serve POST /v1/route and an OpenAI-compatible /v1/chat/completions proxy"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def add_arguments(parser: Any) -> None:
    from argparse import RawDescriptionHelpFormatter

    from confroute.serve.settings import ServeSettings

    # Keep the description's lines (the example config) as written; flags wrap as usual.
    parser.formatter_class = type("ServeHelp", (parser.formatter_class,
                                                RawDescriptionHelpFormatter), {})
    parser.add_argument("--config", action="config",
                        help="YAML file of serve settings (the keys below, e.g. port: 0)")
    parser.add_argument("artifact", help="a directory written by `confroute export`")
    # The token is a secret: never on a command line (`ps` shows argv), only $CONFROUTE_TOKEN.
    parser.add_class_arguments(ServeSettings, skip={"token"}, sub_configs=True)
    parser.add_argument("--access_log", type=bool, default=True, help="log every request")
    parser.add_argument("--log_level", type=LogLevel, default="info", help="log level")


def before_parse(parser: Any, argv: list[str]) -> None:
    """Check each --config file's `upstreams` section before the generic type check, which
    would name neither the entry nor the fix (an API key written into the file, above all)."""
    import yaml

    from confroute.errors import ConfigError
    from confroute.serve.settings import check_upstreams_config

    files = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--config"]
    files += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    for name in files:
        try:
            with open(name, encoding="utf-8") as handle:
                values = yaml.safe_load(handle)
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # the parser reports a missing or malformed file itself
        if isinstance(values, dict):
            try:
                check_upstreams_config(values.get("upstreams"))
            except ConfigError as exc:
                raise ConfigError(f"config file {name}: {exc}") from exc


def settings_from_args(args: Any) -> Any:
    """ServeSettings from the parsed flags, upstream URLs/models/token filled from the env."""
    from confroute.serve.settings import ServeSettings, load_settings

    return load_settings(to_dict(build(ServeSettings, args)))


def run(args: Any, argv: list[str] | None = None) -> int:
    """Serve; `argv` (the command's arguments) is parsed again at each reload, which takes the
    cascade's settings from it (serve/reload.py)."""
    import uvicorn

    from confroute.serve import create_app
    from confroute.serve.listen import bind, url_host
    from confroute.serve.settings import is_loopback

    _log_to_stderr(args.log_level)
    settings = settings_from_args(args)
    source = None if argv is None else (lambda: _settings_again(argv))
    app = create_app(args.artifact, settings, settings_source=source)
    if not is_loopback(settings.host) and settings.token is None:
        print(f"confroute serve: warning: listening on {settings.host} without a token; anyone "
              "who can reach this port can use your upstream API keys. Set CONFROUTE_TOKEN.",
              file=sys.stderr)
    if not is_loopback(settings.host) and not settings.allowed_hosts:
        print(f"confroute serve: warning: listening on {settings.host} with allowed_hosts "
              "empty: requests for any Host name are served off loopback (DNS rebinding); list "
              "this service's names in allowed_hosts.", file=sys.stderr)
    sock = bind(settings.host, settings.port)
    # Print the bound address (the real port when --port 0) before serving, for scripts.
    host, port = sock.getsockname()[:2]
    print(f"confroute serve: listening on http://{url_host(host)}:{port}", flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, access_log=args.access_log)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _settings_again(argv: list[str]) -> Any:
    """The settings of `confroute serve ARGV` as they read now (--config files included);
    ConfigError when they no longer parse."""
    from jsonargparse import ArgumentError

    from confroute.cli import parse_command
    from confroute.errors import ConfigError, one_line

    try:
        return settings_from_args(parse_command("serve", argv))
    except ArgumentError as exc:
        raise ConfigError(f"the serve settings no longer parse: {one_line(str(exc))}") from exc


def _log_to_stderr(level: str) -> None:
    """Show the service's own log lines (routing decisions, upstream failures) like uvicorn's."""
    logger = logging.getLogger("confroute")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
