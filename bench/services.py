"""Start both services for a benchmark, exactly as `make run` does, on their own ports and data folder."""
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from facerec.run import command  # noqa: E402

FACES = Path(os.environ.get("FACEREC_SHARED", REPO.parent / "shared")) / "data" / "faces"
DETECT, STORE = "http://127.0.0.1:5200", "http://127.0.0.1:5201"


def start_services(data_dir, names=("store", "detect"), **settings):
    """The services over `data_dir`, with FACEREC_<name> settings; returns their Popen objects once ready."""
    env = dict(os.environ, PYTHONPATH=str(REPO), FACEREC_DATA_DIR=data_dir, FACEREC_STORE_BIND="127.0.0.1:5201",
               FACEREC_DETECT_BIND="127.0.0.1:5200", FACEREC_STORE_URL=STORE)
    env.update({f"FACEREC_{k}": str(v) for k, v in settings.items()})
    procs = [subprocess.Popen(command(n), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for n in names]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get((DETECT if "detect" in names else STORE) + "/health", timeout=2).ok:
                return procs
        except (requests.ConnectionError, requests.Timeout):  # still starting, or loading a large store
            pass
        time.sleep(0.3)
    stop_services(procs)
    raise SystemExit(f"facerec's {' and '.join(names)} did not start")


def stop_services(procs):
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait()


def peak_rss_mb(pid):
    """The most memory the process `pid` has held (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def worker_pids(master):
    """The gunicorn workers of the arbiter `master`."""
    with open(f"/proc/{master.pid}/task/{master.pid}/children") as children:
        return [int(pid) for pid in children.read().split()]
