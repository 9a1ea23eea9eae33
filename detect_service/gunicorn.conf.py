# Gunicorn settings of the detect service. Used as they are by `make run` and docker-compose.yml.
import os

from facerec.config import setting

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
raw_env = ["OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1"]
accesslog = "-"
wsgi_app = "detect_service:create_app()"


def post_fork(server, worker):
    """One OpenCV thread per worker, like BLAS: the workers already fill the cores, and OpenCV's own pool
    would make them take turns. Keep a worker's memory flat over days of photos:

    glibc raises its mmap threshold each time a large block is freed, so after the first photo the
    multi-megabyte image buffers come from the heap and fragment it; a fixed threshold sends them back
    to the OS on free. Two arenas are plenty for a worker's two threads (hub and dlib).
    """
    import ctypes

    import cv2

    cv2.setNumThreads(1)
    libc = ctypes.CDLL("libc.so.6")
    M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
    libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    libc.mallopt(M_ARENA_MAX, 2)
