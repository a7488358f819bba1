"""Swapping the served artifact while serving (SIGHUP, POST /admin/reload), and the upstream
call shadow judging makes.

A reload loads the artifact directory the service was started with again (a served link, see
confroute.traffic.served, is resolved anew, so `confroute gate --promote` then a reload serves
the candidate) in a worker thread, checks that it routes among the same models (the upstreams
are keyed by them), reads the cascade again (`cascade`, `cascade_policy` and
`cascade_missing` from the service's `settings_source`, e.g. `confroute serve`'s flags and
--config file parsed anew; then the policy from its file or the new artifact's manifest), and
then replaces the service's router, policy and cascade in one step on the event loop. A request
whose scoring call already started finishes on the router it holds (the old one stays alive
while referenced), so no request fails during the swap; a reload that fails keeps
the old router and says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import signal
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import httpx

from confroute.cascade import CascadePolicy
from confroute.errors import ArtifactError, ConfrouteError
from confroute.runtime import Router
from confroute.serve.cascade_policy import load_cascade
from confroute.serve.decisions import serving_policy
from confroute.serve.recording import usage_of
from confroute.serve.settings import Upstream
from confroute.traffic.shadow import Completion

log = logging.getLogger("confroute.serve")


class Service(Protocol):
    """What a reload reads and replaces of the running service (serve.service.Service, which
    imports this module, so it is described here rather than imported)."""

    router: Router
    policy: Any
    model_sha256: str
    models: list[str]
    settings: Any
    settings_source: Callable[[], Any] | None
    cascade: CascadePolicy | None
    metrics: Any
    traffic: Any

    async def reload(self) -> dict[str, Any]: ...


def target_share(router: Router) -> float | None:
    """The cloud share the artifact's policy was calibrated to give (None: not recorded)."""
    from confroute.traffic.routers import RouterView
    from confroute.traffic.served import ArtifactIdentity

    try:
        return RouterView(router, ArtifactIdentity("", "")).target_share()
    except (KeyError, TypeError, ValueError, ConfrouteError):
        return None


async def swap(service: Service) -> dict[str, Any]:
    """Load and swap in the artifact again (see the module docstring); what is served now."""
    old = service.router
    router = await asyncio.to_thread(Router.load, old.directory, service.settings.variant,
                                     service.settings.threads)
    if list(router.models) != service.models:
        raise ArtifactError(f"{old.directory} now routes among {', '.join(router.models)}, "
                            f"but this service serves {', '.join(service.models)} (its "
                            "upstreams are keyed by them): restart confroute serve instead")
    policy = serving_policy(router.policy, service.settings.threshold,
                            service.settings.thresholds)
    settings, cascade = await asyncio.to_thread(_cascade_again, service, router)
    model_file = router.manifest["onnx"]["variants"][router.variant]
    service.router, service.policy = router, policy
    service.settings, service.cascade = settings, cascade
    service.model_sha256 = router.manifest["files"][model_file]
    service.metrics.info.clear()
    service.metrics.info.labels(router.variant, router.turn, service.model_sha256).set(1)
    service.traffic.swap(router, target_share(router))
    identity = service.traffic.identity
    log.info("reloaded the artifact: %s (router.json sha256 %s); cascade %s", identity.id,
             identity.sha256, _described(cascade))
    return {"status": "reloaded", "artifact_id": identity.id,
            "artifact_sha256": identity.sha256, "model_sha256": service.model_sha256,
            "cascade": None if cascade is None else {"t1": cascade.t1, "t2": cascade.t2}}


CASCADE_FIELDS = ("cascade", "cascade_policy", "cascade_missing")


def _cascade_again(service: Service, router: Router) -> tuple[Any, CascadePolicy | None]:
    """The service's settings with the cascade fields read anew from `settings_source` (when
    it has one; the others stay as started: they need a restart), and the cascade they give
    for `router` (`load_cascade`). Raises ConfigError when it cannot apply."""
    settings = service.settings
    if service.settings_source is not None:
        fresh = service.settings_source()
        values = {name: getattr(fresh, name) for name in CASCADE_FIELDS}
        copy = getattr(settings, "model_copy", None)  # pydantic settings, else a dataclass
        settings = copy(update=values) if copy else dataclasses.replace(settings, **values)
    return settings, load_cascade(router, settings)


def _described(cascade: CascadePolicy | None) -> str:
    return "off" if cascade is None else f"t1={cascade.t1:.4f} t2={cascade.t2:.4f}"


@contextlib.contextmanager
def reload_on_sighup(service: Service) -> Iterator[None]:
    """While serving, SIGHUP reloads the artifact (where the loop can take signals: the main
    thread of a POSIX process; elsewhere, e.g. a test client's thread, only the admin call)."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()

    def reload() -> None:
        task = loop.create_task(_logged_reload(service))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        if not service.settings.reload_artifact:
            raise NotImplementedError
        loop.add_signal_handler(signal.SIGHUP, reload)
        installed = True
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        installed = False
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGHUP)


async def _logged_reload(service: Service) -> None:
    try:
        await service.reload()
    except ConfrouteError as error:
        log.error("SIGHUP: the artifact was not reloaded (the old one is served): %s", error)
    except Exception:
        log.exception("SIGHUP: the artifact was not reloaded (the old one is served)")


async def shadow_call(client: httpx.AsyncClient, upstream: Upstream | None, model: str,
                      messages: list[dict[str, Any]], fields: dict[str, Any]) -> Completion:
    """A non-streamed chat completion from `upstream` (the shadow judge's `call`); raises
    ValueError when there is no upstream for `model` or its answer is not a completion."""
    if upstream is None:
        raise ValueError(f"no upstream for {model!r} (shadow judging)")
    headers = {"authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
    response = await client.post(upstream.chat_url, headers=headers, json={
        **fields, "model": upstream.model, "messages": messages, "stream": False})
    response.raise_for_status()
    body = json.loads(response.content)
    text = body["choices"][0]["message"]["content"]
    if not isinstance(text, str):
        raise ValueError(f"{model}: the answer has no text content")
    prompt, completion = usage_of(body)
    return Completion(text, prompt, completion)
