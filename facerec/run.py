"""`make run`: the services in the foreground. Ctrl-C stops them all; a service that dies is started again.

The store starts first, so the detect and stream services find it when they start. `Service` starts one
the same way for the tests and the benchmarks.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent

# name → gunicorn config file; docker-compose.yml runs the same commands (tests/test_deploy.py).
SERVICES = {
    "store": "store_service/gunicorn.conf.py",
    "detect": "detect_service/gunicorn.conf.py",
    "stream": "stream_service/gunicorn.conf.py",
}


def command(name: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", SERVICES[name]]


class Service:
    """One service as a real gunicorn process tree, started exactly as `make run` starts it, on its own
    port: what the tests and the benchmarks run against. `env` is the environment, FACEREC_* settings
    included; it gains the service's bind."""

    def __init__(self, name: str, env: dict, bind: str | None = None, quiet: bool = False):
        self.name, self.env, self.quiet = name, env, quiet
        self.bind = bind or f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.bind}"
        self.env[f"FACEREC_{name.upper()}_BIND"] = self.bind
        self.proc = None

    @property
    def pid(self) -> int:
        """The arbiter's."""
        return self.proc.pid

    def start(self, wait: bool = True, timeout: float = 60) -> "Service":
        output = subprocess.DEVNULL if self.quiet else None
        self.proc = subprocess.Popen(
            command(self.name), cwd=REPO, env=self.env, start_new_session=True, stdout=output, stderr=output
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # still starting, or a busy machine
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} was not ready within {timeout} s")

    def stop(self, sig: int = signal.SIGTERM):
        """Signal the whole process group (arbiter and workers) and wait for it."""
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=40)

    def worker_pids(self) -> list[int]:
        return [child.pid for child in psutil.Process(self.proc.pid).children()]


@contextmanager
def running(*services: Service):
    """The services started in turn, and all stopped after, even one that never became ready (or it
    would outlive its caller)."""
    try:
        for service in services:
            service.start()
        yield services
    finally:
        for service in reversed(services):
            if service.proc is not None and service.proc.poll() is None:
                service.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    procs = {name: subprocess.Popen(command(name)) for name in SERVICES}
    started = {name: time.monotonic() for name in SERVICES}
    delay = {name: 1 for name in SERVICES}
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is None:
                continue
            # Back off while it keeps dying at once (a port in use, say); a long run resets that.
            delay[name] = 1 if time.monotonic() - started[name] > 60 else min(2 * delay[name], 30)
            print(f"facerec: {name} exited with {proc.returncode}; starting it again in {delay[name]} s", flush=True)
            time.sleep(delay[name])
            if not stopping:
                procs[name], started[name] = subprocess.Popen(command(name)), time.monotonic()
        time.sleep(0.2)
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        proc.wait()


if __name__ == "__main__":
    main()
