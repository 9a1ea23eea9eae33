"""OpenBLAS's kernels named by the CPU's flags (facerec/service/blas.py), checked in a real OpenBLAS."""

import ctypes
import ctypes.util
import os
import subprocess
import sys

import pytest

from facerec.service import blas


def test_kernels_follow_the_instruction_flags():
    assert blas.kernels_for({"avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"}) == "SkylakeX"
    assert blas.kernels_for({"avx2", "fma", "avx512f"}) == "Haswell"
    assert blas.kernels_for({"sse4_2", "avx"}) is None


def test_a_kernel_named_by_the_user_wins(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    assert blas.environment()["OPENBLAS_CORETYPE"] == "Zen"


CORENAME = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode())
"""


@pytest.mark.skipif(not blas.kernels_for(blas.cpu_flags()), reason="this CPU has neither AVX2 nor AVX-512")
def test_openblas_loaded_in_the_services_environment_uses_those_kernels():
    """The system OpenBLAS (the one dlib links) started with environment() runs the named kernels."""
    library = ctypes.util.find_library("openblas")
    if library is None:
        pytest.skip("no system OpenBLAS")
    env = {**os.environ, **blas.environment()}
    name = subprocess.run(
        [sys.executable, "-c", CORENAME, library], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert name.lower() == env["OPENBLAS_CORETYPE"].lower()
