"""What a backend is, said once: :class:`Backend`, declared by its adapter module.

Each adapter module (``flopaudit/adapters/<backend>.py``) holds one module
constant ``BACKEND = Backend(...)``; everything else (the adapter class, the
CLI, the cache, the worker pool, the meta-device switch, the reports, the
ruleset checks) reads that descriptor through :mod:`flopaudit.adapters`.

This module imports neither torch nor any backend: reading a descriptor, and
asking whether its backend is installed and at which version, never loads
the backend.
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from flopaudit.inputs import ModelInputs


@dataclass(frozen=True)
class MetaSupport:
    """Whether a backend counts on the meta device, and what to tell the user.

    ``note`` is a warning added to every meta result of an allowed backend,
    or the reason given with status ``not applicable`` otherwise.
    """

    allowed: bool
    note: str = ""


NOT_PROBED_ON_META = MetaSupport(False, "this backend was not probed on the meta device")
"""The meta verdict of a backend that declares none."""

META_DISPATCH_NOTE = (
    "counted on the meta device, where PyTorch dispatches scaled_dot_product_attention and the RNN/LSTM/GRU "
    "layers to other aten kernels than on CPU: attention and recurrent work this backend misses on CPU "
    "(no formula for the CPU kernels) is counted on meta"
)
"""The meta note of a backend that sees aten kernels and has no formula for the CPU attention and RNN
kernels: on meta, other kernels run, which it does count."""


SCRIPT_MODULE_CASES = ("scripted-module", "scripted-convnet")
"""The zoo's cases whose model is a ``torch.jit.script`` module, which refuses module hooks: a
backend that registers hooks or buffers on every module declares one divergence for them all."""


@dataclass(frozen=True)
class Backend:
    """One counting backend, described once.

    The descriptor holds what the rest of flopaudit needs to know about a
    backend without running it; how to count lives in the adapter class it
    names (a subclass of :class:`~flopaudit.adapters.base.Adapter` defined in
    the same module, whose ``backend`` class attribute is this descriptor).
    """

    name: str
    """Backend id used on the command line, in results and in golden file names, e.g. ``"fvcore"``."""
    adapter: str
    """Name of the adapter class in the module that declares this descriptor, e.g. ``"FvcoreAdapter"``."""
    description: str
    """One line: what the backend is and how it sees the model (shown by ``flopaudit backends``)."""
    unit: Unit
    """What the backend's raw number counts, whatever the backend calls it."""
    granularity: Granularity
    """What the backend observes: module hooks, aten ops or a JIT trace."""
    module: str
    """The import name that must be importable for the backend to be available, e.g. ``"fvcore"``."""
    distribution: str | None = None
    """The pip distribution whose version is recorded with every result, e.g. ``"fvcore"``;
    ``None`` for a backend that is part of flopaudit (its version is flopaudit's)."""
    install: str = ""
    """How a user gets the backend when it is missing: a pip command, shown by
    ``flopaudit backends`` and in ``not applicable`` results ("" if it is always there)."""
    ruleset: str | None = None
    """Module path of the ruleset that predicts this backend from the reference's recording
    (:mod:`flopaudit.reference.backend_rulesets`); ``None`` if there is none."""
    meta: MetaSupport = NOT_PROBED_ON_META
    """Whether the backend counts on the meta device the same as on CPU (probed), and the note to show."""
    unit_note: str = ""
    """How the raw number relates to normalised whole-batch MACs, shown with every cell whose
    raw total differs from its MACs ("" when the raw number already is whole-batch MACs)."""
    known_divergences: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Zoo case id -> why the ruleset cannot predict this backend on that case. The ruleset
    checks (``tests/test_ruleset_predictions.py``) run these cases as strict expected failures."""
    counts_macs: bool = True
    """False for a backend that counts parameters (and memory) but no operations:
    its cells say "does not count MACs" and take part in the parameter comparison."""
    order: int = 1000
    """Position among the backends: columns, tables and the default backend list are sorted by
    it (then by name); the reference has 0 and comes first."""
    passes: tuple[str, ...] = ("inference",)
    """What the backend counts (:data:`flopaudit.passes.PASSES`): ``inference`` (one forward
    pass) and/or ``train`` (one training step, :meth:`Adapter._count_train`). A run counts
    with the backends of its pass by default; a backend asked for another pass is ``not
    applicable`` with :meth:`pass_reason`."""

    inputs_check: Callable[[ModelInputs], None] | None = field(default=None, compare=False)
    """Raises :class:`~flopaudit.errors.NotApplicable` where the backend cannot be given these
    inputs at all (calflops moves each with ``.to(device)``): ``Adapter.count`` checks before counting,
    and the reference predicts no count for it."""

    def __post_init__(self) -> None:
        if not self.name or not self.adapter or not self.module:
            raise ValueError(f"backend {self.name!r}: name, adapter and module are required")
        from flopaudit.passes import PASSES

        if not self.passes or set(self.passes) - set(PASSES):
            raise ValueError(f"backend {self.name!r}: passes must be a non-empty subset of {PASSES}")
        if not isinstance(self.unit, Unit) or not isinstance(self.granularity, Granularity):
            raise TypeError(f"backend {self.name!r}: unit and granularity must be records.Unit and records.Granularity")
        object.__setattr__(self, "known_divergences", dict(self.known_divergences))

    def counts(self, kind: str) -> bool:
        """Whether the backend counts passes of ``kind`` (``"inference"``, ``"train"``)."""
        return kind in self.passes

    def pass_reason(self, kind: str) -> str:
        """Why the backend does not count a pass of ``kind`` (for ``not applicable`` results)."""
        if kind == "train":
            return f"{self.name} counts a forward pass only, not a training step"
        return f"{self.name} counts training steps only: count with --pass train (pass_='train')"

    def version(self) -> str:
        """Installed version of the backend's distribution ("" if it is not installed)."""
        try:
            return importlib.metadata.version(self.distribution or "flopaudit")
        except importlib.metadata.PackageNotFoundError:
            if self.distribution is None:
                from flopaudit import __version__

                return __version__
            return ""

    def available(self) -> bool:
        """Whether :attr:`module` can be imported; found without importing it (or its parents)."""
        return module_exists(self.module)

    def missing_reason(self) -> str:
        """Why the backend cannot count here, for results and listings: "X is not installed (pip ...)"."""
        what = f"{self.distribution or self.module} is not installed"
        return f"{what}; install it with: {self.install}" if self.install else what


def module_exists(name: str) -> bool:
    """Whether module ``name`` can be imported, without importing it or any package above it.

    ``importlib.util.find_spec("a.b")`` imports ``a``; this walks the
    packages' search paths instead, unless the parent is already imported.
    """
    parent, _, _ = name.rpartition(".")
    if not parent or parent in sys.modules:
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False
    parts = name.split(".")
    spec = importlib.util.find_spec(parts[0])
    for depth in range(1, len(parts)):
        if spec is None or spec.submodule_search_locations is None:
            return False
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: depth + 1]),
                                                        list(spec.submodule_search_locations))
    return spec is not None


__all__ = ["META_DISPATCH_NOTE", "NOT_PROBED_ON_META", "Backend", "MetaSupport", "module_exists"]
