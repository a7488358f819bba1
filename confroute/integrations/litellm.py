"""confroute choosing the model inside a LiteLLM Router (needs `pip install 'confroute[litellm]'`).

Requests for the alias model (default "confroute") are scored by a confroute artifact and sent to
the LiteLLM model group of the model it chooses; LiteLLM then does the rest as usual: the call,
its retries, its `fallbacks` (give the alias an entry, e.g. `{"confroute": ["cloud"]}`), its cost
map (`response._hidden_params["response_cost"]`) and logging. Requests for any other model group
are picked as LiteLLM's default `simple-shuffle` strategy picks them. A custom strategy picks for
every group of the Router it is registered with (`Router.register_plugin`), hence the second rule.

    from litellm import Router
    from confroute.integrations.litellm import use_confroute

    llm = Router(model_list=[
        {"model_name": "edge", "litellm_params": {"model": "openai/qwen2.5-1.5b",
                                                  "api_base": "http://127.0.0.1:8080/v1"}},
        {"model_name": "cloud", "litellm_params": {"model": "gpt-4o"}},
    ], fallbacks=[{"confroute": ["cloud"]}])
    use_confroute(llm, "runs/demo/artifact")      # model groups named as the artifact's models
    await llm.acompletion(model="confroute", messages=[{"role": "user", "content": "Hi"}])

The artifact's models ("edge" and "cloud" for a pair, its own names for K models) map to model
groups by name, or by `models={"edge": "my-small-group", ...}`. A conversation with no text to
score goes to the most expensive model, as `confroute serve` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from confroute import arguments as check
from confroute.errors import ConfigError, InputError, require

require("litellm", "litellm")
from litellm.router_strategy.simple_shuffle import simple_shuffle  # noqa: E402
from litellm.types.router import CustomRoutingStrategyBase  # noqa: E402

log = logging.getLogger(__name__)
ALIAS = "confroute"


class ConfrouteStrategy(CustomRoutingStrategyBase):
    """LiteLLM custom routing strategy: confroute picks the model group for `alias` requests."""

    def __init__(self, llm_router: Any, router: Any, models: Mapping[str, str] | None = None,
                 alias: str = ALIAS):
        from confroute.runtime import Router

        self.router = check.instance(router, "router", Router, "a loaded confroute Router")
        models = check.mapping(models, "models", optional=True)
        self.alias = check.text(alias, "alias")
        if not callable(getattr(llm_router, "registry", None)):
            raise check.fail(ConfigError, "llm_router", "a litellm.Router", llm_router)
        self.llm_router = llm_router
        names = list(router.models)
        self.groups = {name: (models or {}).get(name, name) for name in names}
        unknown = sorted(set(models or {}) - set(names))
        if unknown:
            raise ConfigError(f"models names {unknown}, which the artifact does not have; its "
                              f"models are {names}")
        missing = [g for g in self.groups.values() if not self._deployments(g)]
        if missing:
            raise ConfigError(f"the LiteLLM Router has no model group {missing}; add a "
                              "model_list entry with that model_name, or map the artifact's "
                              f"models {names} to existing groups with models={{...}}")

    def group_for(self, messages: Any) -> str:
        """The model group confroute chooses for a chat request's `messages`."""
        try:
            model = self.router.decide(messages).model
        except InputError as exc:  # nothing to score: the most expensive model is the safe side
            model = self.router.models[-1]
            log.info("confroute: %s; sending to %s", exc, model)
        return self.groups[model]

    async def async_get_available_deployment(self, model: str, messages: Any = None,
                                             input: Any = None, specific_deployment: Any = False,
                                             request_kwargs: Any = None) -> Any:
        if model == self.alias:  # scoring is CPU work: keep it off the event loop
            model = await asyncio.to_thread(self.group_for, messages or [])
        return self._pick(model, request_kwargs)

    def get_available_deployment(self, model: str, messages: Any = None, input: Any = None,
                                 specific_deployment: Any = False,
                                 request_kwargs: Any = None) -> Any:
        if model == self.alias:
            model = self.group_for(messages or [])
        return self._pick(model, request_kwargs)

    def _pick(self, group: str, request_kwargs: Any) -> Any:
        deployments = self._deployments(group)
        if not deployments:
            raise ValueError(f"no deployment for model group '{group}' in the LiteLLM Router")
        return simple_shuffle(lambda name: None, deployments, group, request_kwargs)

    def _deployments(self, group: str) -> list[Any]:
        return list(self.llm_router.registry().deployments(group) or [])


def use_confroute(llm_router: Any, artifact: str | Path | Any,
                  models: Mapping[str, str] | None = None, alias: str = ALIAS
                  ) -> ConfrouteStrategy:
    """Register confroute as `llm_router`'s routing strategy; returns the strategy.

    `artifact` is a directory written by `confroute export` (or a loaded `Router`); `models` maps
    the artifact's model names to model groups (default: the same names). Raises ConfigError
    when a model has no model group, ArtifactError for a missing or damaged artifact.
    """
    from confroute.runtime import Router

    if not isinstance(artifact, Router):
        artifact = Router.load(check.path(artifact, "artifact", ConfigError, kind="folder"))
    strategy = ConfrouteStrategy(llm_router, artifact, models, alias)
    llm_router.register_plugin(strategy)
    return strategy
