"""The fused C++ CPU kernel of the focal family: choosing it, building it, loading it.

``_fused_cpu.cpp`` (shipped with the package) computes a focal-family loss's per-item
statistics (log p_y, the runner-up log p_j and its index) straight from the logits without
writing any (N, C) tensor, and the logit gradient in one pass. It is compiled on first use with
:func:`torch.utils.cpp_extension.load` (a C++ compiler and ``ninja`` are needed; the build takes
about half a minute and is cached under ``TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``, so later processes load it at once). Vector width is chosen from
:func:`torch.backends.cpu.get_cpu_capability`, as PyTorch's own CPU kernels are.

Select it with :func:`set_cpu_kernel` (which builds at once) or the ``FOCALCAL_CPU_KERNEL``
environment variable (``"eager"``, the default, or ``"fused"``; read at import, the build then
happens at the first loss call, and child processes such as DDP workers inherit it). CUDA and
other devices always use the eager kernel.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "CpuKernel",
    "build_fused_kernel",
    "fused_kernel_for",
    "get_cpu_kernel",
    "set_cpu_kernel",
]

CpuKernel = Literal["eager", "fused"]
_KERNELS: tuple[str, ...] = ("eager", "fused")
_SOURCE = Path(__file__).with_name("_fused_cpu.cpp")
#: compiler flags per :func:`torch.backends.cpu.get_cpu_capability` (the macros select
#: ``at::vec::Vectorized``'s implementation, as in PyTorch's and Inductor's own builds)
_ARCH_FLAGS: dict[str, list[str]] = {
    "AVX512": [
        "-DCPU_CAPABILITY_AVX512",
        "-mavx512f",
        "-mavx512dq",
        "-mavx512vl",
        "-mavx512bw",
        "-mfma",
    ],
    "AVX2": ["-DCPU_CAPABILITY_AVX2", "-mavx2", "-mfma", "-mf16c"],
}

_lock = threading.Lock()
_module: ModuleType | None = None


def _check_kernel(kind: str, source: str) -> CpuKernel:
    if kind not in _KERNELS:
        raise ValueError(
            f"{source}: expected one of {', '.join(map(repr, _KERNELS))}, got {kind!r}"
        )
    return kind  # type: ignore[return-value]


_kernel: CpuKernel = _check_kernel(
    os.environ.get("FOCALCAL_CPU_KERNEL", "eager"), "FOCALCAL_CPU_KERNEL"
)


def get_cpu_kernel() -> CpuKernel:
    """The kernel focal-family losses use on CPU: ``"eager"`` or ``"fused"``."""
    return _kernel


def set_cpu_kernel(kind: CpuKernel) -> None:
    """Use ``kind`` (``"eager"`` or ``"fused"``) for focal-family losses on CPU from now on.

    ``"fused"`` builds (or loads the cached build of) the C++ kernel right away, so the one-off
    compilation happens here rather than in the first training step, and raises
    ``RuntimeError`` if it cannot be built. Affects FL, FLSD, DFL, DFL-SD, inverse focal,
    AdaFocal and AdaDualFocal; values and gradients agree with the eager kernel to rounding.

    Example:
        >>> from focalcal.losses import get_cpu_kernel, set_cpu_kernel
        >>> set_cpu_kernel("eager")
        >>> get_cpu_kernel()
        'eager'
    """
    global _kernel
    kind = _check_kernel(kind, "kind")
    if kind == "fused":
        build_fused_kernel()
    _kernel = kind


def build_fused_kernel(verbose: bool = False) -> ModuleType:
    """Compile (or load from the cache) the fused CPU kernel and return its module."""
    global _module
    with _lock:
        if _module is None:
            from torch.utils.cpp_extension import load

            capability = torch.backends.cpu.get_cpu_capability()
            link_flags: list[str] = []
            if sys.platform == "win32":  # MSVC: portable vectors only
                flags = ["/O2"]
            else:
                flags = ["-O3", *_ARCH_FLAGS.get(capability, [])]
                if sys.platform.startswith("linux") and torch.backends.openmp.is_available():
                    # at::parallel_for is OpenMP pragmas inlined from the headers: without
                    # -fopenmp they are ignored and the kernel runs on one thread. The library
                    # resolves to the libgomp.so.1 that torch has already loaded.
                    flags.append("-fopenmp")
                    link_flags.append("-fopenmp")
            # the name keys the build cache: a changed source or flags build anew
            digest = hashlib.sha256(_SOURCE.read_bytes() + " ".join(flags).encode()).hexdigest()
            name = f"focalcal_fused_cpu_{capability.lower().replace(' ', '_')}_{digest[:12]}"
            try:
                _module = load(
                    name=name,
                    sources=[str(_SOURCE)],
                    extra_cflags=flags,
                    extra_ldflags=link_flags,
                    verbose=verbose,
                )
            except Exception as error:  # compiler or ninja missing, headers mismatched, ...
                raise RuntimeError(
                    "focalcal: could not build the fused CPU kernel (needs a C++ compiler and "
                    f"ninja); use set_cpu_kernel('eager'). Build error: {error}"
                ) from error
        return _module


def fused_kernel_for(logits: Tensor) -> ModuleType | None:
    """The fused kernel's module if it is selected and applies to ``logits`` (CPU, float32 or
    float64), else None."""
    if _kernel != "fused" or logits.device.type != "cpu":
        return None
    if logits.dtype not in (torch.float32, torch.float64):
        return None
    return _module if _module is not None else build_fused_kernel()
