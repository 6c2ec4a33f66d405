"""Typed, immutable result records.

Every count is stored as an integer. Scaling to K/M/G happens only when a
report is rendered (see :mod:`flopaudit.units`).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Breakdown = tuple[tuple[str, int], ...]
"""An immutable, ordered mapping ``name -> integer count`` stored as pairs."""


def breakdown(mapping: Mapping[str, int | float] | None) -> Breakdown:
    """Freeze a mapping into a :data:`Breakdown`, sorted by key, values as int."""
    if not mapping:
        return ()
    return tuple(sorted((str(k), int(round(v))) for k, v in mapping.items()))


class Unit(str, Enum):
    """What one unit of a backend's raw number means."""

    MAC = "MAC"  # one multiply-accumulate
    FLOP = "FLOP"  # one floating point operation; one MAC = 2 FLOPs


class Granularity(str, Enum):
    """How a backend observes the model."""

    MODULE_HOOKS = "module hooks"
    ATEN_OPS = "aten ops"
    JIT_TRACE = "jit trace"
    RULE_OF_THUMB = "rule of thumb"
    """Not a counter: an estimate from a closed form (:mod:`flopaudit.rules_of_thumb`)."""


class Status(str, Enum):
    """Outcome of one (model, backend) count."""

    OK = "ok"
    ERROR = "error"
    TIMEOUT = "timeout"
    NOT_APPLICABLE = "not applicable"


class CauseKind(str, Enum):
    """The family of a cause of difference from the canonical count, as the diff report names it.

    A ``str`` whose value is the name used in reports and results files
    (``CauseKind.MISSED_FUNCTIONAL == "missed-functional"``; formats and
    hashes as that string).
    """

    RULE = "rule"
    """The backend prices this work by a formula of its own."""
    UNSUPPORTED = "unsupported"
    """The backend has no formula for this operator or module type: counted 0."""
    MISSED_FUNCTIONAL = "missed-functional"
    """Work outside leaf modules (functional calls in a ``forward``) that module hooks cannot see."""
    REUSED_MODULE = "reused-module"
    """A module shared by several parents counted once per name."""
    UNIT = "unit"
    """Only the unit or batch convention differs."""

    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class RuleContribution:
    """How much one counting rule moves a backend's total away from canonical.

    ``kind`` is the cause family used by the diff report (:class:`CauseKind`;
    a string naming one is converted, any other raises ``ValueError``);
    ``macs`` is signed (MACs the rule adds, negative when it leaves work out)
    and ``layers`` names the modules it applies to, largest first.
    """

    rule: str
    kind: CauseKind
    macs: int
    layers: Breakdown = ()
    layer_count: int = 0
    """How many layers the rule moved, of which ``layers`` lists the largest
    (0: not recorded, ``len(layers)`` is all there is)."""

    @property
    def more_layers(self) -> int:
        """Layers the rule moved that ``layers`` does not list."""
        return max(0, self.layer_count - len(self.layers))

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CauseKind(self.kind))

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "kind": self.kind.value, "macs": self.macs,
                "layers": [list(x) for x in self.layers], "layer_count": self.layer_count}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuleContribution:
        return cls(d["rule"], d["kind"], int(d["macs"]), tuple((str(k), int(v)) for k, v in d.get("layers", ())),
                   int(d.get("layer_count", 0)))


#: How a reference count's warnings begin a line about predicting one backend
#: (``"<backend>: not predicted: ..."``): its pass could not be recorded, or was recorded
#: in another mode than the backend runs it (``flopaudit.adapters.reference.predict_backends``).
NOT_PREDICTED, PREDICTED_IN_ANOTHER_MODE = "not predicted", "predicted from the pass in"
#: ... or, for a backend that JIT-traces the model, recorded in the branch the model's code takes
#: under a trace (it asks ``torch.jit.is_tracing()``; the note names where), or not, when that
#: branch fails outside a trace.
TRACED_BRANCH = "predicted from the branch taken under a trace, where the model asks torch.jit.is_tracing()"
TRACED_BRANCH_FAILED = ("predicted from the eager branch: the branch the model takes under a trace (it asks "
                        "torch.jit.is_tracing()) fails outside one")


@dataclass(frozen=True)
class RulesetPrediction:
    """The reference's events viewed under one backend's counting rules.

    ``macs`` = canonical MACs + the sum of ``contributions`` (exactly).
    """

    ruleset: str
    macs: int
    contributions: tuple[RuleContribution, ...] = ()
    per_module: Breakdown = ()
    params: int | None = None
    """The backend's parameter count under its ruleset (None: not predicted)."""
    param_contributions: tuple[RuleContribution, ...] = ()
    """``params`` = the reference's unique parameters + the sum of these
    (their ``macs`` field holds parameters)."""

    def to_dict(self) -> dict[str, Any]:
        out = {
            "ruleset": self.ruleset,
            "macs": self.macs,
            "contributions": [c.to_dict() for c in self.contributions],
            "per_module": dict(self.per_module),
        }
        if self.params is not None:
            out["params"] = self.params
            out["param_contributions"] = [c.to_dict() for c in self.param_contributions]
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RulesetPrediction:
        return cls(
            d["ruleset"],
            int(d["macs"]),
            tuple(RuleContribution.from_dict(c) for c in d.get("contributions", ())),
            breakdown(d.get("per_module")),
            None if d.get("params") is None else int(d["params"]),
            tuple(RuleContribution.from_dict(c) for c in d.get("param_contributions", ())),
        )


@dataclass(frozen=True)
class PhaseCount:
    """One phase of a training step as a backend counted it (``forward``, ``loss``,
    ``recompute``, ``backward``, ``optimizer``: :data:`flopaudit.passes.PHASES`).

    ``macs`` are whole-batch MACs like :attr:`CountResult.macs`;
    ``extra_flops`` the phase's other FLOPs where the backend counts them
    (the reference); ``per_module`` (inclusive of children) and ``per_op``
    in MACs, where the backend can tell.
    """

    phase: str
    macs: int
    extra_flops: int = 0
    per_module: Breakdown = ()
    per_op: Breakdown = ()

    def to_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "macs": self.macs, "extra_flops": self.extra_flops,
                "per_module": dict(self.per_module), "per_op": dict(self.per_op)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PhaseCount:
        return cls(str(d["phase"]), int(d["macs"]), int(d.get("extra_flops", 0)), breakdown(d.get("per_module")),
                   breakdown(d.get("per_op")))


@dataclass(frozen=True)
class CountResult:
    """One backend's count of one model on one set of inputs.

    ``raw_total`` is the number exactly as the backend reported it, in the
    backend's own ``unit`` and batch convention. ``macs`` is the same total
    normalised to multiply-accumulates for the whole batch; ``per_module`` and
    ``per_op`` are normalised the same way. ``per_module`` uses dotted module
    paths with ``""`` for the root.
    """

    model: str
    backend: str
    backend_version: str
    torch_version: str
    unit: Unit
    status: Status
    raw_total: int | float | None = None
    macs: int | None = None
    params: int | None = None
    batch_size: int | None = None
    per_module: Breakdown = ()
    per_op: Breakdown = ()
    unsupported: Breakdown = ()
    warnings: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    side_effects: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    error: str | None = None
    extra: tuple[tuple[str, int], ...] = field(default=())
    """Backend-specific integer facts (e.g. the reference's FLOPs, bytes); a key
    starting with :data:`DECLARED_CAUSE` is a declared cause (MACs), one starting
    with :data:`CONDITIONAL_CAUSE` a conditional one."""
    predictions: tuple[RulesetPrediction, ...] = ()
    """Reference only: the count under each backend's ruleset, rule by rule."""
    phases: tuple[PhaseCount, ...] = ()
    """A training step's count split by phase, in phase order (empty for an
    inference pass, and for a backend that cannot tell the phases apart). The
    pass itself is in ``options`` (``pass``, ``loss``, ``optimizer``; absent
    for inference)."""
    notes: tuple[str, ...] = ()
    """What the backend's adapter, and the run, said of this count itself (the reference: no
    backward pass where nothing trains; a model counted on meta in its traced branch); each is in
    ``warnings`` too, among what the backend printed and warned."""

    def __post_init__(self) -> None:
        # NB: plain strings, so that unpickling a result never imports the library a version object came from
        # (torch.__version__ is a TorchVersion: the command line would import torch to read a worker's result).
        for name in ("backend_version", "torch_version"):
            object.__setattr__(self, name, str(getattr(self, name)))

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    def prediction(self, ruleset: str) -> RulesetPrediction | None:
        return next((p for p in self.predictions if p.ruleset == ruleset), None)

    def phase(self, name: str) -> PhaseCount | None:
        """The count of one phase of a training step (None if not recorded)."""
        return next((p for p in self.phases if p.phase == name), None)

    @property
    def pass_kind(self) -> str:
        """``"train"`` for a training-step count, else ``"inference"``."""
        return "train" if dict(self.options).get("pass", "").strip("'\"") == "train" else "inference"

    def module_macs(self) -> dict[str, int]:
        return dict(self.per_module)

    def op_macs(self) -> dict[str, int]:
        return dict(self.per_op)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as strings, breakdowns as objects)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("phases", "notes") and not value:
                continue  # an inference result (a result without notes) reads as it always has
            if isinstance(value, Enum):
                value = value.value
            elif f.name in ("predictions", "phases"):
                value = [pr.to_dict() for pr in value]
            elif f.name in _MAPPING_FIELDS or f.name == "options":
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CountResult:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown CountResult fields: {sorted(unknown)}")
        kwargs: dict[str, Any] = dict(data)
        kwargs["unit"] = Unit(kwargs["unit"])
        kwargs["status"] = Status(kwargs["status"])
        for name in _MAPPING_FIELDS:
            if name in kwargs:
                kwargs[name] = breakdown(kwargs[name])
        kwargs["predictions"] = tuple(RulesetPrediction.from_dict(x) for x in kwargs.get("predictions", ()))
        kwargs["phases"] = tuple(PhaseCount.from_dict(x) for x in kwargs.get("phases", ()))
        for name in ("warnings", "side_effects", "notes"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        if "options" in kwargs:
            opts = kwargs["options"]
            kwargs["options"] = tuple(sorted(dict(opts).items()))
        return cls(**kwargs)


_MAPPING_FIELDS = ("per_module", "per_op", "unsupported", "extra")

DECLARED_CAUSE = "cause: "
"""Prefix of a :attr:`CountResult.extra` key holding MACs that the backend's
own output attributes to a cause the reference cannot observe (the rest of
the key names it): reports book them as a cause of the cell's difference."""

CONDITIONAL_CAUSE = "cause if it is the residual: "
"""Prefix of a :attr:`CountResult.extra` key holding MACs of work the backend
counted that the reference's pass may or may not have run (the rest of the key
names it): a trace that computes a table an eager pass took from a cache in the
model. Reports book it as a cause only when it is exactly what the cell leaves
unexplained; otherwise it changes nothing."""

RESULTS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CaseInfo:
    """What the report needs to know about a model case that was run.

    ``output`` is what building and running the model printed (stdout,
    stderr and warnings), cut to a bounded excerpt; it never reaches the
    terminal.
    """

    id: str
    tags: tuple[str, ...] = ()
    inputs: str = ""
    batch_size: int | None = None
    expected_macs: int | None = None
    expected_params: int | None = None
    forward_s: float | None = None
    error: str | None = None
    output: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseInfo:
        d = dict(data)
        d["tags"] = tuple(d.get("tags", ()))
        return cls(**d)


def installed_version(distribution: str) -> str:
    """The installed version of ``distribution`` ("" when it is not installed), without importing it."""
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return ""


def environment() -> dict[str, str]:
    """Where a run's counts come from: flopaudit, torch, Python, platform, time."""
    import datetime
    import platform

    from flopaudit import __version__

    return {
        "flopaudit": __version__,
        "torch": installed_version("torch"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


@dataclass(frozen=True)
class AuditRun:
    """All results of one audit plus the environment they came from.

    ``costs`` are the measured costs of the models (:class:`flopaudit.measure.records.ModelCost`),
    when the run measured them; ``cost_weights`` the decision matrix's weights
    (:mod:`flopaudit.measure.matrix`; empty: its default).
    """

    results: tuple[CountResult, ...]
    cases: tuple[CaseInfo, ...] = ()
    environment: tuple[tuple[str, str], ...] = field(default_factory=lambda: tuple(environment().items()))
    costs: tuple[Any, ...] = ()
    cost_weights: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {
            "schema": "flopaudit.results",
            "schema_version": RESULTS_SCHEMA_VERSION,
            "environment": dict(self.environment),
            "cases": [c.to_dict() for c in self.cases],
            "results": [r.to_dict() for r in self.results],
        }
        if self.costs:
            out["costs"] = [c.to_dict() for c in self.costs]
            out["cost_weights"] = dict(self.cost_weights)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditRun:
        if data.get("schema") != "flopaudit.results":
            raise ValueError("not a flopaudit results file (missing schema 'flopaudit.results')")
        if int(data.get("schema_version", -1)) > RESULTS_SCHEMA_VERSION:
            raise ValueError(f"results schema {data.get('schema_version')} is newer than this flopaudit supports")
        from flopaudit.measure.records import ModelCost

        return cls(
            results=tuple(CountResult.from_dict(r) for r in data["results"]),
            cases=tuple(CaseInfo.from_dict(c) for c in data.get("cases", ())),
            environment=tuple(sorted(dict(data.get("environment", {})).items())),
            costs=tuple(ModelCost.from_dict(c) for c in data.get("costs", ())),
            cost_weights=tuple((str(k), float(v)) for k, v in dict(data.get("cost_weights", {})).items()),
        )

    def result(self, model: str, backend: str) -> CountResult | None:
        for r in self.results:
            if r.model == model and r.backend == backend:
                return r
        return None

    def case(self, model: str) -> CaseInfo | None:
        return next((c for c in self.cases if c.id == model), None)

    def cost(self, model: str) -> Any:
        """The model's :class:`~flopaudit.measure.records.ModelCost`, if the run measured it."""
        return next((c for c in self.costs if c.model == model), None)

    def to_frame(self) -> Any:
        from flopaudit.frame import results_frame

        return results_frame(self)
