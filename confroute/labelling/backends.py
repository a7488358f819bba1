"""Which backend answers a model spec: an OpenAI-compatible URL or a local model.

Kept apart from `sampling` (the interface both backends import) so that no module imports the
backends that import it. The local backend's heavy imports (torch, transformers) stay inside
its constructor, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confroute.errors import ConfigError, DataError
from confroute.labelling.http import HttpBackend
from confroute.labelling.local import LocalBackend
from confroute.labelling.sampling import Backend
from confroute.llm_client import EndpointConfig


def is_url(spec: str) -> bool:
    """Whether a model spec names an OpenAI-compatible endpoint (http:// or https://)."""
    return spec.startswith(("http://", "https://"))


def backend_name(spec: str, model: str | None = None) -> str:
    """The name a backend's answers are stored under: `<url>#<model>` for an endpoint, else
    the local model's name. Raises `ConfigError` for a URL without `model` or an empty spec."""
    if is_url(spec):
        if not model:
            raise ConfigError(f"{spec} is an OpenAI-compatible URL: name the model served there "
                              "(on the CLI: --edge-model / --cloud-model)")
        return f"{spec}#{model}"
    name = spec.removeprefix("local:")
    if not name.strip():
        raise DataError("empty model name; give 'smollm2', a Hugging Face name, a folder, "
                        "or an http(s):// base URL")
    return name


def make_backend(spec: str, model: str | None = None, *,
                 local: Mapping[str, Any] | None = None,
                 endpoint: Mapping[str, Any] | None = None) -> Backend:
    """The backend for a model spec: an `http(s)://` base URL (with `model`, the name served
    there) gives an `HttpBackend`, whose `EndpointConfig` takes `endpoint` (api_key_env,
    concurrency, timeout_s, max_retries); anything else (`smollm2`, a Hugging Face name or a
    folder, optionally prefixed `local:`) gives a `LocalBackend` with `local` (gguf_file,
    device, dtype, cache_dir, threads). The options of the other kind are ignored, so a CLI
    can pass both. Raises `ConfigError`/`DataError` as `backend_name`, and those of the
    backend's constructor (a local model that cannot be loaded)."""
    name = backend_name(spec, model)
    if is_url(spec):
        return HttpBackend(EndpointConfig(base_url=spec, model=str(model), **(endpoint or {})))
    return LocalBackend(name, **(local or {}))
