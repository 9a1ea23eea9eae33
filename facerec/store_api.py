"""Calls to the store's REST API from the other services (JSON, never pickle): one session, its key,
one time-out, and one way to fail."""

import requests


class StoreUnavailable(RuntimeError):
    """The store did not answer, or answered with an error: nothing was acknowledged."""


class StoreRefused(StoreUnavailable):
    """The store answered 4xx other than 401: the request was wrong (an unknown face, a conflict), not
    the store down. `status` and `message` are the store's, for the caller to pass on."""

    def __init__(self, status: int, message: str):
        super().__init__(f"the face store answered {status}: {message}")
        self.status, self.message = status, message


class StoreAPI:
    def __init__(self, base_url: str, timeout: float, api_key: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if api_key is not None:
            if not isinstance(api_key, str):  # FACEREC_* values are JSON: 12345 arrives as a number
                raise ValueError("STORE_API_KEY must be a string; quote a key that reads as JSON: '\"12345\"'")
            self.session.headers["X-API-Key"] = api_key

    def call(self, method: str, path: str, **kwargs) -> dict:
        """The store's JSON answer; StoreUnavailable for no answer or anything but a 200."""
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise StoreUnavailable(f"the face store at {self.base_url} did not answer ({type(e).__name__})") from None
        if response.status_code == 401:
            raise StoreUnavailable("the face store refused this service's key: set STORE_API_KEY to one of its keys")
        if 400 <= response.status_code < 500:
            raise StoreRefused(response.status_code, _message(response))
        if response.status_code != 200:
            raise StoreUnavailable(f"the face store answered {response.status_code}: {response.text[:200]}")
        return response.json()


def _message(response: requests.Response) -> str:
    """The `message` of the store's one error shape, else the start of its body."""
    try:
        return str(response.json()["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]
