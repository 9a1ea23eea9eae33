"""A small round-robin HTTP load balancer for the replica tests, where no HAProxy binary is installed
(docker-compose.scale.yml runs HAProxy). Like HAProxy with `option redispatch`, a request whose backend
refuses the connection goes to the next one; a backend that fails after taking the request is a 502."""
import http.client
import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from facerec.run import free_port

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
