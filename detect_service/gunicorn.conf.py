# Gunicorn settings of the detect service. Used as they are by `make run` and docker-compose.yml.
import ctypes
import os
from typing import Any

from facerec.service import blas
from facerec.service.config import setting

# OpenCV reads its pixel ceiling once, when facerec.vision first imports it (in the workers, after this).
os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(setting("MAX_IMAGE_PIXELS"))

bind = setting("DETECT_BIND")
# One worker per core: each works on one photo at a time (see views.off_hub), so more would only queue.
workers = setting("DETECT_WORKERS") or len(os.sched_getaffinity(0))
# gevent: a slow upload or a wait on the store costs a greenlet, not a worker.
worker_class = "gevent"
worker_connections = 100
# The heartbeat keeps running during dlib work (views.off_hub), so this bounds a stuck worker only.
timeout = 60
graceful_timeout = 30
# One BLAS thread per worker: the workers already fill the cores.
raw_env = [f"{name}={value}" for name, value in blas.environment().items()]
accesslog = "-"
# No control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) is one per user, so every service
# and every instance on a machine would fight over it, and nothing here uses gunicornc.
control_socket_disable = True
wsgi_app = "detect_service:create_app()"


def post_fork(server: Any, worker: Any) -> None:
    """One OpenCV thread per worker, like BLAS: the workers already fill the cores, and OpenCV's own pool
    would make them take turns. Two malloc arenas are plenty for a worker's two threads (hub and dlib)."""
    import cv2

    cv2.setNumThreads(1)
    LIBC.mallopt(M_ARENA_MAX, 2)


def post_request(worker: Any, req: Any, environ: dict, resp: Any) -> None:
    """Keep a worker's memory flat over days of photos: hand the heap pages a photo freed back to the OS.

    A photo's buffers (tens of MB) come and go; glibc keeps freed heap pages, and fragmentation keeps the
    heap growing. Trimming after each request keeps RSS flat. (A fixed mmap threshold did too, but then
    every one of dlib's scratch images is a fresh mmap, which made large photos slower: docs/performance.md.)
    """
    LIBC.malloc_trim(0)


LIBC = ctypes.CDLL("libc.so.6")
M_ARENA_MAX = -8
