"""Load balancers for the replica tests: HAProxy with deploy/haproxy.cfg's settings where it is installed,
else a small round-robin one here. Like HAProxy with `option redispatch`, a request whose backend refuses
the connection goes to the next one; a backend that fails after taking the request is a 502."""

import http.client
import itertools
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.services import REPO, free_port

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Balancer:
    def __init__(self, backends: list[str]):
        """`backends`: "http://host:port" each."""
        self.backends = [b.removeprefix("http://") for b in backends]
        self._next = itertools.cycle(range(len(self.backends)))
        self._turn = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, name="balancer", daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def connect(self) -> http.client.HTTPConnection | None:
        """A connection to the next backend that accepts one, None if none does."""
        with self._turn:
            first = next(self._next)
        for k in range(len(self.backends)):
            host, port = self.backends[(first + k) % len(self.backends)].split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            try:
                conn.connect()
                return conn
            except OSError:
                conn.close()
        return None


def _handler(balancer):
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def forward(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            conn = balancer.connect()
            try:
                if conn is None:
                    raise OSError("no backend accepts a connection")
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                status, reply, answer = response.status, response.getheaders(), response.read()
            except (OSError, http.client.HTTPException):
                status, reply, answer = 502, [("Content-Type", "text/plain")], b"bad gateway"
            finally:
                if conn is not None:
                    conn.close()
            self.send_response(status)
            for k, v in reply:
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = forward

        def log_message(self, *args):
            pass

    return Forward


class HAProxy:
    """The same over HAProxy itself: deploy/haproxy.cfg's settings, this test's replicas as its servers."""

    def __init__(self, backends: list[str], folder):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = (REPO / "deploy" / "haproxy.cfg").read_text().split("\nfrontend ")[0]
        servers = "".join(f"    server r{k} {b.removeprefix('http://')} inter 300ms\n" for k, b in enumerate(backends))
        self.config = folder / f"haproxy-{self.port}.cfg"
        self.config.write_text(
            f"{settings}\nfrontend front\n    bind 127.0.0.1:{self.port}\n    default_backend replicas\n"
            f"\nbackend replicas\n    balance roundrobin\n{servers}"
        )
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(["haproxy", "-q", "-db", "-f", str(self.config)])
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "haproxy did not start"
                time.sleep(0.05)

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def balancer(backends, folder):
    """HAProxy where its binary is installed (as in docker-compose.scale.yml), else the Balancer above."""
    return HAProxy(backends, folder) if shutil.which("haproxy") else Balancer(backends)
