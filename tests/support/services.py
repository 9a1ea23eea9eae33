"""One service as a real gunicorn process tree, started exactly as `make run` starts it (facerec/run.py), on
a free loopback port: what the tests and the benchmarks run against."""

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import requests

from facerec.run import command

REPO = Path(__file__).resolve().parents[2]
# The engines the store runs on. A module runs its tests on both by overriding the `engine` fixture:
#     @pytest.fixture(params=ENGINES)
#     def engine(request): return request.param
ENGINES = ["sqlite", "postgresql"]


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


def service_env(tmp_path_factory, **settings):
    """The environment services start in: this one, the repository on the path, a fresh data folder,
    and FACEREC_<name> for each setting."""
    return dict(
        os.environ,
        PYTHONPATH=str(REPO),
        FACEREC_DATA_DIR=str(tmp_path_factory.mktemp("data")),
        **{f"FACEREC_{name}": str(value) for name, value in settings.items()},
    )
