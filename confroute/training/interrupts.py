"""Ctrl-C that a long study never loses.

Python's default SIGINT handler raises KeyboardInterrupt in whatever code the main thread runs
when the signal arrives. When that code is a finalizer or a weakref callback run by the garbage
collector (SQLAlchemy's event registry has one, and optuna's storage runs through SQLAlchemy), the
interpreter prints "Exception ignored in ..." and goes on: the interrupt is gone, and a
1000-trial study keeps running. `Interrupts` remembers every SIGINT it receives, so the next
training batch, validation batch or trial boundary raises it again from ordinary code.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

import pytorch_lightning as pl

_received = threading.Event()
_depth = 0  # Interrupts entered and not yet left (a study's, then each trial's fit)
_previous: Any = None  # the SIGINT handler before the outermost one


class Interrupts:
    """While entered (main thread only; elsewhere a no-op), SIGINT raises KeyboardInterrupt and
    is remembered; `check()` raises KeyboardInterrupt again if one was received since the
    outermost `Interrupts` was entered. Nested ones (a study around each trial's training) share
    what was received. When the outermost exits, the previous SIGINT handler is back."""

    def __init__(self) -> None:
        self._installed = False

    def __enter__(self) -> Interrupts:
        global _depth, _previous
        if threading.current_thread() is threading.main_thread():
            if _depth == 0:
                _received.clear()
                _previous = signal.signal(signal.SIGINT, _handle)
            else:
                signal.signal(signal.SIGINT, _handle)
            _depth += 1
            self._installed = True
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        global _depth
        if self._installed:
            _depth -= 1
            signal.signal(signal.SIGINT, _previous if _depth == 0 else _handle)
            self._installed = False

    @property
    def received(self) -> bool:
        """Whether a SIGINT arrived since the outermost `Interrupts` was entered."""
        return _received.is_set()

    def restore(self) -> None:
        """Put the handler back (Lightning sets SIGINT to SIG_IGN once it has caught one)."""
        if self._installed:
            signal.signal(signal.SIGINT, _handle)

    def check(self) -> None:
        """Raise KeyboardInterrupt when a SIGINT arrived since the outermost was entered."""
        if _received.is_set():
            raise KeyboardInterrupt("interrupted (Ctrl-C)")

    def callback(self) -> pl.Callback:
        """A Lightning callback that calls `check()` after every training and validation batch,
        so Lightning's own Ctrl-C handling (graceful teardown, then SystemExit) takes over."""
        return _CheckAfterBatches(self)


def _handle(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise KeyboardInterrupt


class _CheckAfterBatches(pl.Callback):
    def __init__(self, interrupts: Interrupts):
        self.interrupts = interrupts

    def on_train_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.interrupts.check()

    def on_validation_batch_end(self, *args: Any, **kwargs: Any) -> None:
        self.interrupts.check()
