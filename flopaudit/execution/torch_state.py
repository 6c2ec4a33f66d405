"""Torch's process-wide settings, taken when a process starts building cases and put back before each.

Where one process builds and counts several cases one after another (a run
with ``--no-isolation``, a Dask worker; the supervised workers are given one
case each instead, see :mod:`flopaudit.execution.supervisor`), a model's factory
that calls ``torch.set_default_dtype(torch.float64)`` (or turns autograd off,
asks for deterministic algorithms...) would otherwise reach every later case
in that process: a ``Linear`` built after it is float64 and reads twice the
bytes it reads when counted alone, so a count would depend on which cases
shared its process. Put back: the default dtype and device, grad mode,
deterministic algorithms (and their warn-only flag), anomaly detection (and
its NaN check), the float32 matmul precision and the multi-head attention
fast path.
# NB: not put back: what a model's code assigns in torch's namespaces (a
# monkeypatched ``torch.nn.functional`` function) or in other libraries, and
# modules it imported; within one case, its own settings hold for all its counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TorchSettings:
    """The settings :func:`settings_now` read: ``(name, value, how to read it, how to set it)``."""

    values: tuple[tuple[str, Any, Callable[[], Any], Callable[[Any], Any]], ...]

    def restore(self) -> list[str]:
        """Set every setting that changed back; the names of those that had."""
        changed = []
        for name, value, read, put in self.values:
            if read() != value:
                put(value)
                changed.append(name)
        return changed


def _readers() -> dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]]:
    import torch

    readers: dict[str, tuple[Callable[[], Any], Callable[[Any], Any]]] = {
        "default dtype": (torch.get_default_dtype, torch.set_default_dtype),
        "grad mode": (torch.is_grad_enabled, torch.set_grad_enabled),
        "deterministic algorithms": (
            lambda: (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()),
            lambda v: torch.use_deterministic_algorithms(v[0], warn_only=v[1])),
        "anomaly detection": (
            lambda: (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
            lambda v: torch.set_anomaly_enabled(v[0], v[1])),
        "float32 matmul precision": (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
        "attention fast path": (torch.backends.mha.get_fastpath_enabled, torch.backends.mha.set_fastpath_enabled),
    }
    if hasattr(torch, "_GLOBAL_DEVICE_CONTEXT"):
        readers["default device"] = (_default_device, torch.set_default_device)
    return readers


def _default_device() -> Any:
    """The device ``torch.set_default_device`` set, or None where none was (what puts it back:
    ``torch.get_default_device()`` reads "cpu" then, and setting "cpu" would leave a
    ``DeviceContext`` torch function mode active where there was none)."""
    import torch

    context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)  # noqa: SLF001
    return None if context is None else context.device


def settings_now() -> TorchSettings:
    """Torch's process-wide settings as they are now."""
    return TorchSettings(tuple((name, read(), read, put) for name, (read, put) in _readers().items()))


__all__ = ["TorchSettings", "settings_now"]
