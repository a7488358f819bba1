"""confroute serve: run the routing service and OpenAI-compatible proxy for an artifact."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import yaml

from confroute.errors import ConfigError

# flag -> ServeSettings key; flags override the YAML config, which overrides the defaults
FLAGS = {"host": "host", "port": "port", "threshold": "threshold", "variant": "variant",
         "threads": "threads", "score_workers": "score_workers", "batch_max": "batch_max",
         "max_body_bytes": "max_body_bytes", "max_prompt_chars": "max_prompt_chars",
         "read_timeout": "read_timeout_s"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="serve POST /v1/route and an OpenAI-compatible /v1/chat/completions proxy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a router artifact over HTTP: POST /v1/route, POST "
        "/v1/chat/completions (scored, then forwarded to the edge or cloud upstream, with "
        "fallback), GET /health, GET /metrics.",
        epilog="upstreams and secrets come from the environment:\n"
        "  CONFROUTE_EDGE_BASE_URL, CONFROUTE_EDGE_MODEL, CONFROUTE_EDGE_API_KEY\n"
        "  CONFROUTE_CLOUD_BASE_URL, CONFROUTE_CLOUD_MODEL, CONFROUTE_CLOUD_API_KEY\n"
        "  CONFROUTE_TOKEN: when set, clients must send 'Authorization: Bearer <token>'")
    p.add_argument("artifact", help="a directory written by `confroute export`")
    p.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, help="port (default 8000; 0 = any free port)")
    p.add_argument("--config", help="YAML file of serve settings (see confroute.serve.settings)")
    p.add_argument("--threshold", type=float, help="default threshold (else the artifact's)")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"])
    p.add_argument("--threads", type=int,
                   help="onnxruntime intra-op threads per scoring call (default 1; 0 = "
                   "onnxruntime's default, all cores)")
    p.add_argument("--score-workers", type=int,
                   help="scoring calls at once (default: one per CPU core)")
    p.add_argument("--batch-max", type=int,
                   help="micro-batching: most prompts per scoring call (default 1 = off)")
    p.add_argument("--max-body-bytes", type=int, help="largest request body (default 1000000)")
    p.add_argument("--max-prompt-chars", type=int, help="longest scored text (default 100000)")
    p.add_argument("--read-timeout", type=float,
                   help="seconds to wait for an upstream's answer to start (default 120)")
    p.add_argument("--no-fallback", action="store_true",
                   help="do not try the other upstream when the chosen one fails")
    p.add_argument("--no-access-log", action="store_true", help="no per-request access log")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(run=run)


def settings_from_args(args: argparse.Namespace) -> Any:
    from confroute.serve.settings import load_settings

    values: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config) as handle:
                values = yaml.safe_load(handle) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read serve config {args.config}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"serve config {args.config} is not valid YAML: {exc}") from exc
        if not isinstance(values, dict):
            raise ConfigError(f"serve config {args.config} must be a mapping of settings")
    for flag, key in FLAGS.items():
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    if args.threads == 0:
        values["threads"] = None
    if args.no_fallback:
        values["fallback"] = False
    return load_settings(values)


def run(args: argparse.Namespace) -> int:
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
    config = uvicorn.Config(app, log_level=args.log_level, access_log=not args.no_access_log)
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
