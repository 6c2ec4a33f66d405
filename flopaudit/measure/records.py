"""What a cost measurement produced: immutable records of integers (no torch).

Times are integer nanoseconds, memory and traffic integer bytes, work
integer FLOPs/MACs, ceilings integer FLOP/s and bytes/s; ratios (arithmetic
intensity, achieved FLOP/s, shares) are derived properties, computed when a
report asks. Every record round-trips through ``to_dict``/``from_dict``
(``results.json``).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from flopaudit.records import Status


def _ratio(a: int | float, b: int | float) -> float | None:
    return a / b if b else None


@dataclass(frozen=True)
class Ceilings:
    """The machine's measured ceilings on one device, dtype and thread count.

    ``peak_flops`` is the best FLOP/s of an ``n x n @ n x n`` matmul
    (``2 n^3`` FLOPs; ``matmul_n`` is that ``n``, grown until one product
    takes long enough to time); ``bandwidth`` the best bytes/s of copying
    ``copy_bytes`` into another buffer of the same size (each copy reads
    and writes them: ``2 x copy_bytes`` moved). Both are the best of a few
    repetitions after a warm-up, on the device and dtype of the model.
    """

    device: str
    dtype: str
    threads: int
    peak_flops: int
    """FLOP/s."""
    bandwidth: int
    """Bytes/s (read + write)."""
    matmul_n: int
    copy_bytes: int
    device_name: str = ""

    @property
    def ridge(self) -> float | None:
        """The roofline's ridge point: FLOPs per byte above which a kernel can be compute-bound."""
        return _ratio(self.peak_flops, self.bandwidth)

    def roof(self, intensity: float) -> float:
        """The attainable FLOP/s at ``intensity`` FLOPs per byte: ``min(peak, intensity x bandwidth)``."""
        return min(float(self.peak_flops), intensity * self.bandwidth)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Ceilings:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class _Work:
    """Derived figures of timed work with ``flops``, ``bytes_read`` and ``bytes_written``."""

    flops: int
    bytes_read: int
    bytes_written: int

    def _timed_ns(self) -> int | None:  # pragma: no cover - each record says which time
        raise NotImplementedError

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float | None:
        """Arithmetic intensity: canonical FLOPs per byte moved (``None`` without traffic)."""
        return _ratio(self.flops, self.bytes)

    @property
    def achieved_flops(self) -> float | None:
        """FLOP/s achieved: canonical FLOPs over the measured time."""
        ns = self._timed_ns()
        return _ratio(self.flops * 1e9, ns) if ns else None

    def bound(self, ceilings: Ceilings | None) -> str:
        """``memory`` below the ridge point, ``compute`` at or above it, ``-`` when unknown."""
        ridge = ceilings.ridge if ceilings else None
        if ridge is None or self.intensity is None:
            return "-"
        return "memory" if self.intensity < ridge else "compute"


@dataclass(frozen=True)
class LayerCost(_Work):
    """One module path's own work and time in a forward pass.

    ``path`` is the module path the reference counter attributes operators
    to (``""`` = the root: work done in the model's own ``forward`` outside
    any child module); the work is the layer's *own* operators, not its
    children's (a residual block's ``add``, not its convolutions), so the
    layers of a model add up to the whole. ``time_ns`` is the layer's own
    time (its calls' time less its child modules'), the median over the
    profiled passes; ``kind`` names what dominates its work (``conv``,
    ``depthwise conv``, ``matmul``, ``attention``, ``norm``,
    ``activation``, ``pool``, ``elementwise``...).
    """

    path: str
    module_type: str
    kind: str
    calls: int
    time_ns: int
    macs: int
    flops: int
    bytes_read: int
    bytes_written: int

    def _timed_ns(self) -> int | None:
        return self.time_ns

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerCost:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class ModelCost(_Work):
    """The measured cost of one model's forward pass (status ``ok``), or why there is none.

    ``samples_ns`` are the timed forward passes after ``warmup`` untimed
    ones, on ``threads`` torch threads; the latency is their median.
    ``macs``, ``flops`` (canonical: 2 x MACs + extra FLOPs), ``params``
    (unique) and ``bytes_read``/``bytes_written`` (every operator's inputs
    and outputs) are the reference counter's for the same pass; ``layers``
    the per-layer split (:class:`LayerCost`), timed over ``layer_passes``
    passes with a timer at every module call. ``peak_memory`` is the most
    bytes the pass held at once (``memory_method`` says how it was read).
    ``ceilings`` were measured in the same process, device and dtype.
    """

    model: str
    status: Status
    device: str = ""
    dtype: str = ""
    threads: int = 0
    batch_size: int | None = None
    inputs: str = ""
    warmup: int = 0
    samples_ns: tuple[int, ...] = ()
    macs: int = 0
    flops: int = 0
    params: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    peak_memory: int | None = None
    memory_method: str = ""
    layers: tuple[LayerCost, ...] = ()
    layer_passes: int = 0
    unattributed_ns: int = 0
    """Own time of module calls that run no operator of their own (containers,
    ``Identity``, dropout in eval), measured in the profiled passes."""
    ceilings: Ceilings | None = None
    notes: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    # -- latency ----------------------------------------------------------
    @property
    def latency_ns(self) -> int | None:
        """Median of the timed passes."""
        return int(statistics.median(self.samples_ns)) if self.samples_ns else None

    def quantile_ns(self, q: float) -> int | None:
        """The ``q`` quantile of the timed passes (linear interpolation), e.g. 0.25 and 0.75 for the IQR."""
        s = sorted(self.samples_ns)
        if not s:
            return None
        pos = q * (len(s) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(s) - 1)
        return int(round(s[lo] + (s[hi] - s[lo]) * (pos - lo)))

    @property
    def spread(self) -> float | None:
        """Half the interquartile range relative to the median (``0.03`` reads ``+/-3%``)."""
        med, lo, hi = self.latency_ns, self.quantile_ns(0.25), self.quantile_ns(0.75)
        if not med or lo is None or hi is None:
            return None
        return (hi - lo) / 2 / med

    # -- derived ----------------------------------------------------------
    def _timed_ns(self) -> int | None:
        return self.latency_ns

    @property
    def peak_fraction(self) -> float | None:
        """Achieved FLOP/s as a fraction of the measured matmul peak."""
        achieved = self.achieved_flops
        if achieved is None or self.ceilings is None:
            return None
        return _ratio(achieved, self.ceilings.peak_flops)

    @property
    def layer_time_ns(self) -> int:
        return sum(layer.time_ns for layer in self.layers)

    @property
    def overhead_ns(self) -> int | None:
        """The measured latency less what the layers account for (negative when the profiled passes
        ran slower than the timed ones)."""
        latency = self.latency_ns
        return None if latency is None or not self.layers else latency - self.layer_time_ns

    # -- files ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "status":
                value = value.value
            elif f.name == "layers":
                value = [layer.to_dict() for layer in value]
            elif f.name == "ceilings":
                value = value.to_dict() if value is not None else None
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelCost:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown ModelCost fields: {sorted(unknown)}")
        kw: dict[str, Any] = dict(d)
        kw["status"] = Status(kw["status"])
        kw["layers"] = tuple(LayerCost.from_dict(x) for x in kw.get("layers", ()))
        kw["ceilings"] = Ceilings.from_dict(kw["ceilings"]) if kw.get("ceilings") else None
        for name in ("samples_ns", "notes"):
            kw[name] = tuple(kw.get(name, ()))
        return cls(**kw)


def failed_cost(model: str, status: Status, message: str) -> ModelCost:
    """A measurement that did not happen (the model failed, the phase hung or its worker died)."""
    return ModelCost(model, status, error=message)


__all__ = ["Ceilings", "LayerCost", "ModelCost", "failed_cost"]
