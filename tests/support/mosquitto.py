"""A private mosquitto broker (Debian's) on a free port of 127.0.0.1, for the MQTT tests and the bench:
anonymous, no persistence (a restart forgets retained messages, as a broker without a volume does), and
stop() / start() for the tests that take the broker away mid-stream."""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from tests.support.services import free_port

PROGRAMS = ("mosquitto", "/usr/sbin/mosquitto")


class Unavailable(RuntimeError):
    """No mosquitto on this machine."""


class Broker:
    def __init__(self):
        self.program = next((p for p in map(shutil.which, PROGRAMS) if p), None)
        if self.program is None:
            raise Unavailable("no mosquitto on PATH or in /usr/sbin (Debian: apt-get install mosquitto)")
        self.folder = tempfile.mkdtemp(prefix="facerec-mqtt-")
        self.port = free_port()
        self.config = os.path.join(self.folder, "mosquitto.conf")
        with open(self.config, "w") as f:
            f.write(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        os.chmod(self.folder, 0o755)  # run as root, mosquitto drops to its own user and reads the file again
        os.chmod(self.config, 0o644)
        self.proc = None
        self.start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10) -> None:
        log = open(os.path.join(self.folder, "log"), "ab")
        self.proc = subprocess.Popen([self.program, "-c", self.config], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"mosquitto exited with {self.proc.returncode}: see {self.folder}/log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise Unavailable(f"mosquitto did not listen within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
