"""A Ctrl-C raised inside a garbage-collector callback is lost to Python; Interrupts keeps it."""

import gc
import signal
import weakref

import pytest

from confroute.training.interrupts import Interrupts

# The interrupt each test loses on purpose is reported by pytest as unraisable.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


class _Collected:
    pass


def _interrupt_inside_a_weakref_callback() -> None:
    target = _Collected()
    ref = weakref.ref(target, lambda _: signal.raise_signal(signal.SIGINT))
    del target  # the callback runs now; its KeyboardInterrupt is printed and ignored
    gc.collect()
    assert ref() is None


def test_a_ctrl_c_lost_in_a_weakref_callback_is_raised_at_the_next_check():
    with Interrupts() as interrupts:
        _interrupt_inside_a_weakref_callback()  # returns: Python swallowed the interrupt
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()


def test_without_an_interrupt_check_passes_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGINT)
    with Interrupts() as interrupts:
        interrupts.check()
        assert signal.getsignal(signal.SIGINT) != before
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # what Lightning does after a Ctrl-C
        interrupts.restore()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert interrupts.received
    assert signal.getsignal(signal.SIGINT) == before


def test_nested_ones_share_what_was_received():
    """A study (outer) around each trial's training (inner): a Ctrl-C the inner one received
    and Python lost is still raised at the study's next check."""
    before = signal.getsignal(signal.SIGINT)
    with Interrupts() as study:
        with Interrupts():
            _interrupt_inside_a_weakref_callback()
        with pytest.raises(KeyboardInterrupt):
            study.check()
    assert signal.getsignal(signal.SIGINT) == before
    with Interrupts() as fresh:  # a new outermost one starts clean
        fresh.check()
