"""The deadlines of one request: its whole time, and each upstream's time to first content.

The request guard starts a request's Deadline when the request arrives (so reading the body
and scoring count) and leaves it in the ASGI scope; the proxy bounds every upstream wait by it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

SCOPE_KEY = "confroute.deadline"


@dataclasses.dataclass(frozen=True)
class Deadline:
    """`ends_at` on the time.monotonic() clock; the two settings it came from, in seconds."""

    ends_at: float
    request_timeout_s: float
    first_content_timeout_s: float

    @classmethod
    def start(cls, settings: Any) -> Deadline:
        """A request arriving now, under ServeSettings `settings`."""
        return cls(time.monotonic() + settings.request_timeout_s, settings.request_timeout_s,
                   settings.first_content_timeout_s)

    @classmethod
    def of(cls, scope: Mapping[str, Any], settings: Any) -> Deadline:
        """The deadline the guard left in the ASGI `scope`, else one starting now."""
        found = scope.get(SCOPE_KEY)
        return found if isinstance(found, Deadline) else cls.start(settings)

    def left(self) -> float:
        """Seconds until the request must be done (negative: past it)."""
        return self.ends_at - time.monotonic()

    def for_attempt(self) -> tuple[float, str]:
        """(seconds, setting): how long one upstream may take to its first content, and the
        setting that bounds it (first_content_timeout_s, or request_timeout_s when less of the
        request's time is left)."""
        left = self.left()
        if self.first_content_timeout_s <= left:
            return self.first_content_timeout_s, "first_content_timeout_s"
        return max(left, 0.0), "request_timeout_s"
