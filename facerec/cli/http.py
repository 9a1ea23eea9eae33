"""The CLI's side of the services' REST APIs: JSON over HTTP, retries, 503 with Retry-After."""

import threading
import time
from typing import Any

import requests

# A request that has not been answered in this long is taken as lost and sent again: a worker admits a
# photo only while those ahead of it would take at most MAX_QUEUE_SECONDS (60 by default).
TIMEOUT = (10, 300)
# Transient failures (no answer, 5xx, 503) are retried until no request of the run has succeeded for
# this long; then the service is taken as down and the run stops (running it again resumes).
GIVE_UP_AFTER = 120
BACKOFF = (0.5, 1, 2, 4, 8, 15)


class Refused(Exception):
    """The service answered 4xx: this request will never succeed as it is."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status} {message}")
        self.status = status


class Unreachable(Exception):
    """The service kept failing or not answering for GIVE_UP_AFTER seconds."""


class Busy(Exception):
    """A 503: the service is full (or its store is away) for now; try again after `wait` seconds."""

    def __init__(self, message: str, wait: float):
        super().__init__(message)
        self.wait = wait


class ServiceClient:
    """One service at `url`, shared by the CLI's threads (each has its own connection pool)."""

    def __init__(self, url: str, api_key: str | None = None):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self._local = threading.local()
        self.last_success = time.monotonic()  # of any request, by any thread: the service is working

    def session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
            if self.api_key:
                self._local.session.headers["X-API-Key"] = self.api_key
        return self._local.session

    def call(self, method: str, path: str, raise_busy: bool = False, **kwargs: Any) -> Any:
        """The JSON (or bytes, for an image) of a 2xx answer, retrying what may succeed later.

        A 503 is waited out (its Retry-After), or with `raise_busy` raised as Busy, for the caller to
        make room first."""
        started, attempt = time.monotonic(), 0
        while True:
            try:
                response = self.session().request(method, self.url + path, timeout=TIMEOUT, **kwargs)
            except requests.RequestException as e:  # no answer: down, restarting, or a dropped connection
                reason, wait = f"no answer ({type(e).__name__})", BACKOFF[min(attempt, len(BACKOFF) - 1)]
            else:
                if response.ok:
                    self.last_success = time.monotonic()
                    return (
                        response.json()
                        if response.headers.get("Content-Type", "").startswith("application/json")
                        else response.content
                    )
                reason = f"{response.status_code} {error_message(response)}"
                if response.status_code == 503:
                    wait = retry_after(response, BACKOFF[min(attempt, len(BACKOFF) - 1)])
                    if raise_busy:
                        raise Busy(reason, wait)
                elif response.status_code >= 500:
                    wait = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                else:
                    self.last_success = time.monotonic()  # an answer all the same
                    raise Refused(response.status_code, error_message(response))
            self.check_progress(started, reason)
            attempt += 1
            time.sleep(wait)

    def unready(self) -> str | None:
        """Why the service is not ready (one GET /health, no retries), or None when it is."""
        try:
            response = self.session().get(self.url + "/health", timeout=10)
        except requests.RequestException as e:
            return f"{self.url} does not answer ({type(e).__name__})"
        return None if response.ok else f"{self.url}/health answered {response.status_code} {error_message(response)}"

    def check_progress(self, since: float, reason: str) -> None:
        """Raise Unreachable when no request has succeeded since `since` for GIVE_UP_AFTER seconds."""
        if time.monotonic() - max(since, self.last_success) > GIVE_UP_AFTER:
            raise Unreachable(f"{self.url}: {reason}; gave up after {GIVE_UP_AFTER} s without an answer")

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)


def error_message(response: requests.Response) -> str:
    """The `message` of the services' one error shape, else the start of the body."""
    try:
        return response.json()["message"]
    except (ValueError, KeyError, TypeError):
        return response.text[:200].strip() or response.reason


def retry_after(response: requests.Response, default: float) -> float:
    try:
        return min(float(response.headers["Retry-After"]), 60.0)
    except (KeyError, ValueError):
        return default
