# Gunicorn settings of the store service. Used as they are by `make run` and docker-compose.yml.
from facerec.service import blas
from facerec.service.config import setting

bind = setting("STORE_BIND")
# Exactly one process: it owns the SQLite file and the in-memory search matrix (the one writer).
# Its threads share one lock-guarded connection; searches of one matrix need no more.
workers = 1
worker_class = "gthread"
threads = 4
# One BLAS thread a search: a query is a memory-bound matrix-vector product, which a second thread does
# not speed up, and on a busy machine its hand-offs cost more than the product (docs/performance.md).
# Concurrent queries run on the gthreads instead.
raw_env = [f"{name}={value}" for name, value in blas.environment().items()]
timeout = 60
graceful_timeout = 30
# Never preload: SQLite must be opened after the fork, in the worker.
preload_app = False
accesslog = "-"
# No control socket: its default path ($HOME/.gunicorn/gunicorn.ctl) is one per user, so every service
# and every instance on a machine would fight over it, and nothing here uses gunicornc.
control_socket_disable = True
wsgi_app = "store_service:create_app()"
