"""The one way a test waits for something another process does: poll until it holds, or fail saying what
did not happen. The time-out is generous (a busy two-core machine); the tests check behaviour, not speed."""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WAIT = 60  # seconds


def eventually(check: Callable[[], T], what: str, timeout: float = WAIT, every: float = 0.1) -> T:
    """`check()`'s first true value, polled every `every` seconds; AssertionError naming `what` when none
    came within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(every)
