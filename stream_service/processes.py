"""The child processes' ends: a message to a process that may be gone, and stopping one for sure.

Processes are started with "spawn": the gunicorn worker runs threads, and a fork would copy their locks
mid-use. Each child holds the only other end of its pipe, so when the service's worker dies (even by
kill -9) the pipe closes, the child's next message fails and it leaves: none outlives the service.
"""

import multiprocessing
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from .messages import ToDetector, ToReader
from .shared_frames import unlink

STOP_WAIT = 3  # seconds a process has to stop when asked, before it is terminated

CONTEXT = multiprocessing.get_context("spawn")


def send(conn: Connection, message: ToReader | ToDetector) -> bool:
    """Send `message`; False when the other end is gone (its sentinel tells the pipe loop)."""
    try:
        conn.send(message)
        return True
    except (OSError, ValueError):
        return False


def finish(process: BaseProcess, deadline: float) -> None:
    """Wait for a process until `deadline`, then terminate it, then kill it."""
    process.join(timeout=max(0.0, deadline - time.monotonic()))
    if process.is_alive():
        process.terminate()
        process.join(timeout=1)
    if process.is_alive():
        process.kill()
        process.join()


class Stopping:
    """Processes told to stop, with the shared memory they created: joined when they have, terminated
    when they are late (STOP_WAIT); then their shared memory is unlinked (a reader killed with -9 leaves
    it behind)."""

    def __init__(self) -> None:
        self.waiting: list[tuple[BaseProcess, list[str], float]] = []  # (process, shared memory, deadline)

    def add(self, process: BaseProcess, names: list[str]) -> None:
        self.waiting.append((process, names, time.monotonic() + STOP_WAIT))

    def sentinels(self) -> list[int]:
        return [process.sentinel for process, _, _ in self.waiting]

    def reap(self) -> None:
        """Finish the processes that stopped or are late; the others keep their time."""
        still = []
        for process, names, deadline in self.waiting:
            if process.is_alive() and time.monotonic() < deadline:
                still.append((process, names, deadline))
            else:
                _finish_and_unlink(process, names, time.monotonic())
        self.waiting = still

    def finish_all(self, deadline: float) -> None:
        """Wait for every one until `deadline` (then terminate it) and let its shared memory go."""
        for process, names, _ in self.waiting:
            _finish_and_unlink(process, names, deadline)
        self.waiting = []


def _finish_and_unlink(process: BaseProcess, names: list[str], deadline: float) -> None:
    finish(process, deadline)
    for name in names:
        unlink(name)
