"""Start the services for a benchmark with facerec/run.py's Service, exactly as `make run` does, on their
own ports and data folder."""

import os
import sys
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.support.services import Service, free_port  # noqa: E402

FACES = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")) / "data" / "faces"
# Free ports, chosen once per benchmark run: two benchmarks on one machine never talk to each other's services.
BINDS = {name: f"127.0.0.1:{free_port()}" for name in ("detect", "store")}
DETECT, STORE = (f"http://{BINDS[name]}" for name in ("detect", "store"))


def start_services(data_dir, names=("store", "detect"), **settings):
    """The services over `data_dir`, with FACEREC_<name> settings; returns their Services once ready."""
    env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=data_dir, FACEREC_STORE_URL=STORE)
    env.update({f"FACEREC_{k}": str(v) for k, v in settings.items()})
    services = [Service(name, env, bind=BINDS[name], quiet=True) for name in names]
    try:
        for service in services:
            service.start(timeout=180)  # a store of a million faces loads for a while
    except (RuntimeError, TimeoutError) as e:
        stop_services(services)
        raise SystemExit(f"facerec's {' and '.join(names)} did not start: {e}") from None
    return services


def stop_services(services):
    for service in services:
        if service.proc is not None and service.proc.poll() is None:
            service.stop()


def peak_rss_mb(pid):
    """The most memory the process `pid` has held (VmHWM: psutil does not report it), in MB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def rss_mb(pid):
    return psutil.Process(pid).memory_info().rss / 2**20


def worker_pids(service):
    """The gunicorn workers of `service`."""
    return service.worker_pids()
