"""A WHIP endpoint (RFC 9725) on 127.0.0.1, as a media server runs one: a plain HTTP server takes the
requests, aiortc answers each offer on an event loop of its own thread and decodes the video it receives.

`mode`: "answer" (201, the SDP answer, a relative Location to DELETE), "refuse" (403 to every offer), or
"silent" (reads the offer and never answers)."""

import asyncio
import http.server
import threading
import uuid

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class WhipEndpoint:
    def __init__(self, mode: str = "answer") -> None:
        self.mode = mode
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # (method, path, headers), in order
        self.sessions: dict[str, RTCPeerConnection] = {}  # by resource path, while not DELETEd
        self.frames = 0  # video frames decoded, over every session
        self.last = None  # the last one (av.VideoFrame)
        self.closing = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.threads = [
            threading.Thread(target=self.loop.run_forever, daemon=True),
            threading.Thread(target=self.server.serve_forever, daemon=True),
        ]
        for thread in self.threads:
            thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/whip/endpoint"

    def deleted(self) -> list[tuple[str, dict[str, str]]]:
        """(path, headers) of every DELETE received."""
        return [(path, headers) for method, path, headers in self.requests if method == "DELETE"]

    def end_sessions(self) -> None:
        """End every session from the server's side, as a media server that drops a publisher does."""
        for path in list(self.sessions):
            self._run(self.sessions.pop(path).close())

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.end_sessions()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.threads[0].join(10)
        self.loop.close()

    def __enter__(self) -> "WhipEndpoint":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    async def _answer(self, offer: str) -> tuple[str, str]:
        """(the session's resource path, the SDP answer)."""
        pc = RTCPeerConnection()

        @pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self._receive(track))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        path = f"/whip/session/{uuid.uuid4().hex}"
        self.sessions[path] = pc
        return path, pc.localDescription.sdp

    async def _receive(self, track) -> None:
        try:
            while True:
                self.last = await track.recv()
                self.frames += 1
        except MediaStreamError:
            pass

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                offer = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                endpoint.requests.append(("POST", self.path, dict(self.headers)))
                if endpoint.mode == "silent":
                    endpoint.closing.wait()
                    return
                if endpoint.mode == "refuse":
                    self._send(403, "text/plain", b"this stream key may not publish")
                    return
                path, answer = endpoint._run(endpoint._answer(offer))
                self._send(201, "application/sdp", answer.encode(), Location=path)

            def do_DELETE(self) -> None:
                pc = endpoint.sessions.pop(self.path, None)  # gone before the DELETE is seen
                endpoint.requests.append(("DELETE", self.path, dict(self.headers)))
                if pc is not None:
                    endpoint._run(pc.close())
                self._send(200 if pc is not None else 404, "text/plain", b"")

            def _send(self, status: int, content_type: str, body: bytes, **headers: str) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        return Handler
