"""A starved machine: the privacy filter must hold when detection cannot keep up."""

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def starved() -> Iterator[None]:
    """One process spinning on every core and one more, at the services' own priority (the stream
    service's detection workers run below it, at nice 10), for as long as the block runs."""
    spinning = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(len(os.sched_getaffinity(0)) + 1)
    ]
    try:
        yield
    finally:
        for process in spinning:
            process.kill()
            process.wait()
