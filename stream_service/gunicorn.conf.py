# Gunicorn settings of the stream service. Used as they are by `make run` and docker-compose.yml.
import signal
from types import FrameType
from typing import Any

from facerec.service import blas
from facerec.service.config import setting

bind = setting("STREAM_BIND")
# Exactly one worker: it owns the streams, their reader processes and the detection workers
# (stream_service/manager.py). Its threads serve the viewers, each an MJPEG or event connection held open.
workers = 1
worker_class = "gthread"
threads = 32
# One BLAS and OpenMP thread per process (inherited by the detection workers): the workers fill the cores.
raw_env = [f"{name}={value}" for name, value in blas.environment().items()]
timeout = 60
# HTTPS when a certificate is given: a browser on the LAN gives the page its camera only over https://.
certfile = setting("STREAM_CERT_FILE")
keyfile = setting("STREAM_KEY_FILE")
graceful_timeout = 10
preload_app = False  # the processes must belong to the worker, not to the arbiter that forks it
accesslog = "-"
control_socket_disable = True  # one per user by default: the services would collide on it (docs/operations.md)
wsgi_app = "stream_service:create_app()"


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, end every MJPEG and event response at once: they never end by themselves, and the
    worker would otherwise wait graceful_timeout for them."""
    streams = worker.wsgi.extensions["streams"]
    graceful = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: FrameType | None) -> None:
        streams.shutting_down()
        if callable(graceful):  # gunicorn's own handler: a graceful stop
            graceful(signum, frame)

    signal.signal(signal.SIGTERM, stop)


def worker_exit(server: Any, worker: Any) -> None:
    """Stop the streams' processes before the worker goes: none is left orphaned."""
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        app.extensions["streams"].close()
