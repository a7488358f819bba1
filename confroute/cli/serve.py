"""confroute serve: serve a router artifact over HTTP: POST /v1/route, POST
/v1/chat/completions (scored, then forwarded to the edge or cloud upstream, with fallback),
GET /health, GET /metrics. The flags are ServeSettings' fields; --config reads them from YAML.

Upstreams and secrets come from the environment:
  CONFROUTE_EDGE_BASE_URL, CONFROUTE_EDGE_MODEL, CONFROUTE_EDGE_API_KEY
  CONFROUTE_CLOUD_BASE_URL, CONFROUTE_CLOUD_MODEL, CONFROUTE_CLOUD_API_KEY
  CONFROUTE_TOKEN: when set, clients must send 'Authorization: Bearer <token>'
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

from confroute.config import build, to_dict

HELP = "serve POST /v1/route and an OpenAI-compatible /v1/chat/completions proxy"
LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def add_arguments(parser: Any) -> None:
    from confroute.serve.settings import ServeSettings

    parser.add_argument("--config", action="config",
                        help="YAML file of serve settings (the keys below, e.g. port: 0)")
    parser.add_argument("artifact", help="a directory written by `confroute export`")
    # The token is a secret: never on a command line (`ps` shows argv), only $CONFROUTE_TOKEN.
    parser.add_class_arguments(ServeSettings, skip={"token"}, sub_configs=True)
    parser.add_argument("--access_log", type=bool, default=True, help="log every request")
    parser.add_argument("--log_level", type=LogLevel, default="info", help="log level")


def settings_from_args(args: Any) -> Any:
    """ServeSettings from the parsed flags, upstream URLs/models/token filled from the env."""
    from confroute.serve.settings import ServeSettings, load_settings

    return load_settings(to_dict(build(ServeSettings, args)))


def run(args: Any) -> int:
    import uvicorn

    from confroute.serve import create_app
    from confroute.serve.listen import bind, url_host
    from confroute.serve.settings import is_loopback

    _log_to_stderr(args.log_level)
    settings = settings_from_args(args)
    app = create_app(args.artifact, settings)
    if not is_loopback(settings.host) and settings.token is None:
        print(f"confroute serve: warning: listening on {settings.host} without a token; anyone "
              "who can reach this port can use your upstream API keys. Set CONFROUTE_TOKEN.",
              file=sys.stderr)
    sock = bind(settings.host, settings.port)
    # Print the bound address (the real port when --port 0) before serving, for scripts.
    host, port = sock.getsockname()[:2]
    print(f"confroute serve: listening on http://{url_host(host)}:{port}", flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, access_log=args.access_log)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _log_to_stderr(level: str) -> None:
    """Show the service's own log lines (routing decisions, upstream failures) like uvicorn's."""
    logger = logging.getLogger("confroute")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)-9s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
