"""A program the tests need and this machine lacks: the test skips, saying why, except under CI=true, where
it fails (make test installs what CI needs; CI must never pass without running those tests)."""

import os
from typing import NoReturn

import pytest


def needed(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)
