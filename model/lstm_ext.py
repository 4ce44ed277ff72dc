"""Builds and loads the C++ LSTM kernels (model/csrc/lstm.cpp) on first use.

The extension is compiled once per checkout with ``torch.utils.cpp_extension.load`` and
cached under the user's cache directory (``$LSTM_SEARCH_CACHE`` or
``~/.cache/lstm-search``), keyed by torch and Python version, the compiler flags and the
checkout's path and kernel source, so later processes (every search worker) only load the
built library. When the build fails (no compiler, no ninja, read-only cache), ``function()``
returns None after one warning and callers use the pure-torch path in ``model.fused_lstm``,
which computes the same thing.
Commands call ``ensure_built(echo)`` before their first timed training, so the build (about
a minute of CPU, once per checkout) is announced and never counted in a trial's time. Two
processes starting at once do not compile twice: ``cpp_extension.load`` holds a lock file
in the build folder while it builds (an OS lock in recent torch, released if its holder is
killed), and the process that waited finds the library built and only loads it.
Set ``LSTM_SEARCH_NO_EXT=1`` to skip the extension (benchmarks compare both paths this way).
``LSTM_SEARCH_PACKED_GEMM=1`` (or ``set_packed_gemm(True)``) makes the float32 recurrent
products use MKL's packed GEMM (W packed once per sequence instead of once per step);
off by default until measured faster (``benchmarks/bench_throughput.py --packed-gemm``).
The float32 products go through oneDNN's matmul instead of MKL's sgemm on x86 CPUs with
AVX-512 not made by Intel, where MKL keeps to its AVX2 kernels and oneDNN is faster
(benchmarks/RESULTS.md#float32-products); ``LSTM_SEARCH_ONEDNN_GEMM=1`` or ``=0``
forces the choice either way, ``gemm_backend()`` says which is in use.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "BUILD_LINE",
    "cache_dir",
    "ensure_built",
    "function",
    "gemm_backend",
    "instrument",
    "is_built",
    "load",
    "set_min_parallel_elems",
    "set_onednn_gemm",
    "set_packed_gemm",
    "unavailable_reason",
]

_SOURCE = Path(__file__).with_name("csrc") / "lstm.cpp"
_NAME = "lstm_search_lstm"
BUILD_LINE = "building the C++ kernels, once, about a minute (cached for every later run)"
_lock = threading.Lock()
_state: dict[str, Any] = {}  # "module": the loaded extension or None; "reason": why None


def _flags() -> tuple[str, list[str]]:
    """Optimisation flags for this CPU; the tag goes into the cache path so machines differ."""
    # No FP traps are ever enabled, and without this gcc will not vectorise the float->int
    # conversion inside the exp of the fused forward loop, and the forward runs far slower.
    # -fopenmp: at::parallel_for in the fused loops is an inline OpenMP region; without it
    # the loops silently stay on one thread. The runtime is torch's own libgomp, already
    # loaded by the time the extension is.
    flags = ["-O3", "-fno-trapping-math", "-fopenmp"]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":  # torch's AVX512 level implies F, BW, DQ and VL
        # 16 lanes for the fused loops: faster than the AVX2 build at the default space's
        # sizes (benchmarks/RESULTS.md#fp32-throughput).
        return "avx512", [*flags, "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mfma",
                          "-mprefer-vector-width=512"]
    if capability == "AVX2":
        # AVX2 + FMA lets gcc vectorise the fused loops.
        return "avx2", [*flags, "-mavx2", "-mfma"]
    return "base", flags


def cache_dir() -> Path:
    root = os.environ.get("LSTM_SEARCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lstm-search"
    )
    tag, _ = _flags()
    torch_version = torch.__version__.replace("+", "_")
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    # One folder per checkout and kernel source: the build file names the source by its
    # path, so two checkouts (or versions) sharing a folder rebuilt the extension at every
    # alternate start, each rebuild a compile of the kernels.
    key = hashlib.sha256(str(_SOURCE.resolve()).encode() + _SOURCE.read_bytes()).hexdigest()[:12]
    return Path(root) / "torch_extensions" / f"torch{torch_version}-{py}-{tag}-{key}"


def _ensure_ninja_on_path() -> None:
    # torch calls the `ninja` executable; the PyPI wheel puts it in the venv, which may not
    # be on PATH when the venv is used without being activated.
    if shutil.which("ninja"):
        return
    try:
        import ninja  # type: ignore[import-not-found]
    except ImportError:
        return
    os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def _build(cpp_extension: ModuleType) -> ModuleType:
    """Compile (unless this checkout's library is already cached) and import the extension."""
    _ensure_ninja_on_path()
    build = cache_dir()
    build.mkdir(parents=True, exist_ok=True)
    _, flags = _flags()
    return cpp_extension.load(
        name=_NAME,
        sources=[str(_SOURCE)],
        extra_cflags=flags,
        build_directory=str(build),
        verbose=False,
    )


def _disabled() -> bool:
    return os.environ.get("LSTM_SEARCH_NO_EXT", "") not in ("", "0")


def is_built() -> bool:
    """Whether this checkout's compiled library is in the cache (loading it takes a second)."""
    return any(cache_dir().glob(f"{_NAME}.*")) if not _disabled() else False


def ensure_built(echo: Callable[[str], None] | None = print) -> bool:
    """Build and load the kernels now, before any timed training, saying so with
    ``BUILD_LINE`` when they must be compiled. Returns whether the extension is in use.

    Commands call this before their first trial or run, so that no trial's seconds include
    the compiler; after it, ``load()`` in this process returns at once.
    """
    if "module" not in _state and not _disabled() and not is_built() and echo is not None:
        echo(BUILD_LINE)
    return load() is not None


def load() -> ModuleType | None:
    """The compiled extension, building it on first call; None if unavailable."""
    if "module" in _state:
        return _state["module"]
    with _lock:
        if "module" in _state:
            return _state["module"]
        module = None
        if _disabled():
            _state["reason"] = "disabled by LSTM_SEARCH_NO_EXT"
            _state["module"] = None
            return None
        try:
            # Importing cpp_extension on a machine without a CUDA toolkit logs a warning
            # about CUDA_HOME that is irrelevant to this CPU-only extension.
            logger = logging.getLogger("torch.utils.cpp_extension")
            level = logger.level
            logger.setLevel(logging.ERROR)
            try:
                from torch.utils import cpp_extension
            finally:
                logger.setLevel(level)

            module = _build(cpp_extension)
        except Exception as exc:  # noqa: BLE001  # any build or load failure: fall back, say so once
            detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
            _state["reason"] = f"{type(exc).__name__}: {detail}"
            warnings.warn(
                f"lstm-search: C++ LSTM kernels unavailable ({_state['reason']}); "
                "using the slower pure-torch path",
                RuntimeWarning,
                stacklevel=2,
            )
            module = None
        if module is not None and os.environ.get("LSTM_SEARCH_PACKED_GEMM", "") not in ("", "0"):
            module.set_packed_gemm(True)
        if module is not None:
            _state["onednn"] = bool(module.set_onednn_gemm(_onednn_wanted()))
        _state["module"] = module
        return module


def _cpu_vendor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _onednn_wanted() -> bool:
    """oneDNN for the float32 products where MKL is slow: x86 CPUs with AVX-512 not made by
    Intel (MKL dispatches its AVX-512 kernels on Intel's only). Without AVX-512 both run
    AVX2 kernels and MKL's sgemm, with its lower cost per call, trained faster at every
    measured shape (benchmarks/RESULTS.md#float32-products); on Intel, MKL
    keeps pace with nn.LSTM. ``LSTM_SEARCH_ONEDNN_GEMM`` overrides either way."""
    setting = os.environ.get("LSTM_SEARCH_ONEDNN_GEMM", "").strip()
    if setting:
        return setting != "0"
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    avx512 = torch.backends.cpu.get_cpu_capability() == "AVX512"
    return x86 and avx512 and _cpu_vendor() not in ("", "GenuineIntel")


def set_onednn_gemm(enabled: bool) -> bool:
    """Route the float32 products through oneDNN's matmul (True) or MKL's sgemm; returns
    whether oneDNN is now in use (False where the extension or torch's oneDNN is absent)."""
    module = load()
    _state["onednn"] = bool(module.set_onednn_gemm(enabled)) if module is not None else False
    return _state["onednn"]


def gemm_backend() -> str:
    """Which library computes the extension's float32 matrix products: "onednn" or "blas"
    (ATen's BLAS: MKL on x86 wheels) ("none" without the extension)."""
    if load() is None:
        return "none"
    return "onednn" if _state.get("onednn") else "blas"


def set_packed_gemm(enabled: bool) -> bool:
    """Switch the packed float32 recurrent products on or off; returns whether they are
    now in use (False where the extension or MKL's packed API is unavailable)."""
    module = load()
    return bool(module.set_packed_gemm(enabled)) if module is not None else False


def set_min_parallel_elems(elems: int) -> int | None:
    """How many elements (batch rows x H) each thread's share of a fused per-step loop must
    have before the loop is split over torch's threads (0: never split); returns the
    previous value, or None without the extension. Results do not depend on it."""
    module = load()
    return int(module.set_min_parallel_elems(int(elems))) if module is not None else None


class _ExtLSTMSequence(torch.autograd.Function):
    """h_T of the LSTM over x (T, B, D), CPU only, through the C++ kernels.

    ``mixed``: bf16 matmul operands with float32 state and gradients (see lstm.cpp). The
    kernels run with autocast off: the precision is chosen here, explicitly, and an
    autocast region must not recast the kernels' own matmuls (that was the
    "self and mat2 must have the same dtype" error).
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight_ih: Tensor, weight_hh: Tensor, bias: Tensor, mixed: bool = False
    ) -> Tensor:
        ext = _state["module"]
        with torch.autocast("cpu", enabled=False):
            h, gates, cs, tanh_cs, hs, x_m, w_ih_m, w_hh_m = ext.forward(x, weight_ih, weight_hh, bias, mixed)
        ctx.save_for_backward(x_m, w_ih_m, w_hh_m, gates, cs, tanh_cs, hs)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor | None, ...]:
        ext = _state["module"]
        needs = ctx.needs_input_grad
        with torch.autocast("cpu", enabled=False):
            grad_x, grad_w_ih, grad_w_hh, grad_b = ext.backward(grad_h, *ctx.saved_tensors, needs[0])
        return grad_x if needs[0] else None, grad_w_ih, grad_w_hh, grad_b, None


def instrument(wrap: Callable[[Any], Any]) -> bool:
    """Route every later kernel call through ``wrap(module)`` (benchmarks/profile_step.py
    labels them for torch.profiler), so the training step itself carries no profiling code.
    False when the kernels are unavailable."""
    module = load()
    if module is not None:
        _state["module"] = wrap(module)
    return module is not None


def unavailable_reason() -> str | None:
    """Why the extension is not in use (build error, LSTM_SEARCH_NO_EXT), or None when it is."""
    return None if load() is not None else _state.get("reason", "unknown")


def function() -> type[torch.autograd.Function] | None:
    """The extension-backed autograd.Function, or None when the extension is unavailable."""
    return _ExtLSTMSequence if load() is not None else None
