"""`make run`: the services in the foreground. Ctrl-C stops them all; a service that dies is started again.

The store starts first, so the detect and stream services find it when they start. The tests and the
benchmarks start each one with the same command (tests/support/services.py).
"""

import signal
import subprocess
import sys
import time

# name → gunicorn config file; docker-compose.yml runs the same commands (tests/test_deploy.py).
SERVICES = {
    "store": "store_service/gunicorn.conf.py",
    "detect": "detect_service/gunicorn.conf.py",
    "stream": "stream_service/gunicorn.conf.py",
}


def command(name: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", SERVICES[name]]


def main() -> None:
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
