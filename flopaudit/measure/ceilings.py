"""The machine's ceilings, measured on the device, dtype and thread count of the model.

* peak FLOP/s: the best of :data:`REPS` products of two ``n x n`` matrices
  (``2 n^3`` FLOPs each) after a warm-up; ``n`` starts at the device's
  :data:`MATMUL_MIN_N` and grows (a multiple of 64, at most 4x a step)
  until one product takes :data:`MATMUL_MIN_S`, or reaches the device's
  cap, so the product is large enough to run at the BLAS library's speed
  and small enough to cost a fraction of a second on a fast device;
* bandwidth: the best of :data:`REPS` copies of one buffer into another
  (``copy_bytes`` read and as many written), buffers several times the
  size of a CPU's last-level cache (a GPU's L2).

# NB: these are the ceilings a roofline is drawn with, as torch reaches them
# on this machine now (other processes share the cores here), not the
# vendor's datasheet figures; a kernel can beat the copy's bandwidth when
# its data stay in cache.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from flopaudit.measure.records import Ceilings
from flopaudit.measure.timing import synchronize

REPS = 3
MATMUL_MIN_S = 0.02
MATMUL_TARGET_S = 0.04
MATMUL_MIN_N = {"cpu": 1024, "cuda": 4096}
MATMUL_CAP = {"cpu": 4096, "cuda": 16384}
COPY_BYTES = {"cpu": 128 << 20, "cuda": 1 << 30}


def _best_seconds(fn: Any, args: tuple[Any, ...], device: torch.device, reps: int = REPS) -> float:
    """The fastest of ``reps`` calls ``fn(*args)``, in seconds."""
    best = float("inf")
    for _ in range(reps):
        synchronize(device)
        start = time.perf_counter()
        fn(*args)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def peak_flops(device: torch.device, dtype: torch.dtype) -> tuple[int, int]:
    """(FLOP/s, n) of the best ``n x n`` matmul (see the module docstring)."""
    cap = MATMUL_CAP.get(device.type, 4096)
    n = MATMUL_MIN_N.get(device.type, 1024)
    with torch.no_grad():
        while True:
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            torch.mm(a, b)  # warm-up: library initialisation, kernel selection
            first = _best_seconds(torch.mm, (a, b), device, 1)
            if first >= MATMUL_MIN_S or n >= cap:
                break
            grow = (MATMUL_TARGET_S / max(first, 1e-9)) ** (1 / 3)
            n = min(cap, max(n + 64, int(n * min(grow, 4.0)) // 64 * 64))
        seconds = min(first, _best_seconds(torch.mm, (a, b), device, REPS - 1))
    return int(2 * n**3 / seconds), n


def bandwidth(device: torch.device, dtype: torch.dtype) -> tuple[int, int]:
    """(bytes/s read + written, bytes per buffer) of the best copy between two large buffers."""
    size = COPY_BYTES.get(device.type, 128 << 20)
    element = torch.empty((), dtype=dtype).element_size()
    src = torch.ones(size // element, dtype=dtype, device=device)
    dst = torch.empty_like(src)
    with torch.no_grad():
        dst.copy_(src)  # warm-up: pages touched
        seconds = _best_seconds(dst.copy_, (src,), device)
    nbytes = src.numel() * element
    return int(2 * nbytes / seconds), nbytes


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_ceilings(device: torch.device, dtype: torch.dtype) -> Ceilings:
    """Peak FLOP/s and bandwidth on ``device`` in ``dtype`` with the current torch thread count."""
    flops, n = peak_flops(device, dtype)
    bytes_per_s, nbytes = bandwidth(device, dtype)
    return Ceilings(str(device), str(dtype).replace("torch.", ""), torch.get_num_threads(), flops, bytes_per_s, n,
                    nbytes, device_name(device))


__all__ = ["measure_ceilings", "peak_flops", "bandwidth"]
