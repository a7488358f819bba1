"""Serving: a routing endpoint and an OpenAI-compatible proxy over the torch-free `Router`.

    from confroute.serve import create_app, load_settings
    app = create_app("runs/demo/artifact", load_settings())

Needs the `serve` extra (starlette, uvicorn, httpx, prometheus-client); never imports torch.
"""

from confroute.serve.app import create_app
from confroute.serve.settings import ServeSettings, UpstreamSettings, load_settings

__all__ = ["ServeSettings", "UpstreamSettings", "create_app", "load_settings"]
