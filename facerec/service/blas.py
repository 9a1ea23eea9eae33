"""The environment OpenBLAS (dlib's encoder, NumPy's products) reads when it loads, for service processes.

OpenBLAS picks its kernels by the CPU's model. A virtual CPU it does not know (a cloud VM's "Intel(R)
Xeon(R) Processor") gets its generic SSE3 kernels ("Prescott"): on this project's machine that made a
face's encoding 2.4x slower than with the kernels its AVX-512 flags allow (docs/performance.md). So the
kernels are named by the CPU's instruction flags, unless the user named them (OPENBLAS_CORETYPE).
"""

import os

# (kernels, the flags they need), best first.
KERNELS = (("SkylakeX", {"avx512f", "avx512bw", "avx512vl", "avx512dq"}), ("Haswell", {"avx2", "fma"}))


def environment() -> dict[str, str]:
    """One BLAS and OpenMP thread (each service's processes already fill the cores) and the kernels."""
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    kernels = os.environ.get("OPENBLAS_CORETYPE") or kernels_for(cpu_flags())
    if kernels:
        env["OPENBLAS_CORETYPE"] = kernels
    return env


def kernels_for(flags: set[str]) -> str | None:
    return next((name for name, needed in KERNELS if needed <= flags), None)


def cpu_flags() -> set[str]:
    """The first CPU's flags from /proc/cpuinfo; none where there is no such file (not Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


if __name__ == "__main__":  # `env $(python -m facerec.blas) command`: the kernels for a command's OpenBLAS
    kernels = environment().get("OPENBLAS_CORETYPE")
    print(f"OPENBLAS_CORETYPE={kernels}" if kernels else "")
