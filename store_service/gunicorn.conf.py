# Gunicorn settings of the store service. Used as they are by `make run` and docker-compose.yml.
from facerec.config import setting

bind = setting("STORE_BIND")
# Exactly one process: it owns the SQLite file and the in-memory search matrix (the one writer).
# Its threads share one lock-guarded connection; searches of one matrix need no more.
workers = 1
worker_class = "gthread"
threads = 4
timeout = 60
graceful_timeout = 30
# Never preload: SQLite must be opened after the fork, in the worker.
preload_app = False
accesslog = "-"
wsgi_app = "store_service:create_app()"
