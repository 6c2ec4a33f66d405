"""Rulesets: named, data-only views over the same recorded events.

One forward pass is recorded once (:class:`~flopaudit.reference.engine.OpEvent`
and :class:`~flopaudit.reference.engine.ModuleCall` records); a
:class:`Ruleset` says how another counter *would* count that pass, so the
reference can reproduce each backend's conventions without running it.

Design
------
A ruleset is a frozen dataclass holding only data:

* ``event_rules``: an ordered tuple of :class:`EventRule`. Each rule matches
  events on any of ``op`` (an overload ``"aten.mm.default"`` or a packet
  ``"aten.mm"``), ``category``, ``module_type`` (class name of the innermost
  module), ``in_leaf``, ``supported``, ``traced`` (inside a traced custom
  op), ``autograd_function`` (inside a custom autograd Function),
  ``patched`` (inside a patched Python call); the first matching rule names
  the *event counter* that turns the event into an integer. Events no rule
  matches use ``default``.
* ``module_rules``: :class:`ModuleRule` entries for counters built on module
  hooks (thop, ptflops-pytorch, torchinfo): a module call whose class name
  (or dotted class path) matches is priced by a named *module counter* from
  its :class:`ModuleCall` record (input/output shapes, hyper-parameters,
  parameter shapes), and with ``suppress_inner`` the operator events inside
  that call are not counted again. Rules match the exact class, as hook-based
  counters do (``type(m) in table``), never subclasses. A call nested in a
  call already priced by a suppressing rule is skipped.
* ``unit`` (``"MAC"`` or ``"FLOP"``): what the resulting integers mean.
* ``per_sample``: divide totals by the batch size (ptflops' convention).

Counters are referenced by *name* so that rulesets stay plain data; the
functions live in two registries, :data:`EVENT_COUNTERS`
(``OpEvent -> int``) and :data:`MODULE_COUNTERS` (``ModuleCall -> int``),
extended with :func:`event_counter` / :func:`module_counter`. A helper adding
a backend's ruleset adds its counters (e.g. ``"thop.conv"``) and one
``Ruleset`` value, then calls :func:`register_ruleset`.

Examples of what the pieces express: "only modules whose exact type has a
rule, never functional ops" = ``module_rules`` + ``default="zero"`` and no
event rules; "ReLU counts numel" = ``ModuleRule("ReLU", "out_numel")``;
"bias counts" = counter ``"macs+extra"`` on conv/matmul events; "transposed
conv by output size" = counter ``"conv_by_output"``.

Built-in rulesets: ``canonical`` (FLOPs = 2 x MACs + extra FLOPs, every
category), ``canonical-macs`` (MACs of every category) and ``torchvision``
(conv + matmul-family MACs as in torchvision's weight metadata ``_ops``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Sequence

from flopaudit.reference.engine import PATCHED_CALL_PREFIX, ModuleCall, OpEvent
from flopaudit.reference.registry import CONTRACTION_CATEGORIES, Category

EventCounter = Callable[[OpEvent], int]
ModuleCounter = Callable[[ModuleCall], int]

EVENT_COUNTERS: dict[str, EventCounter] = {}
MODULE_COUNTERS: dict[str, ModuleCounter] = {}

ValueCorrection = Callable[[Any, Sequence[ModuleCall]], Iterator[tuple[ModuleCall, int]]]
"""``(model, module calls) -> (call, MACs)`` pairs: what a counter reads from
the model's values rather than from shapes (a pruning mask's ones)."""
VALUE_CORRECTIONS: dict[str, tuple[ValueCorrection, str]] = {}


def event_counter(name: str) -> Callable[[EventCounter], EventCounter]:
    """Decorator: register an event counter under ``name`` (duplicates rejected)."""

    def decorator(fn: EventCounter) -> EventCounter:
        if name in EVENT_COUNTERS:
            raise ValueError(f"event counter {name!r} already registered")
        EVENT_COUNTERS[name] = fn
        return fn

    return decorator


def module_counter(name: str) -> Callable[[ModuleCounter], ModuleCounter]:
    """Decorator: register a module counter under ``name`` (duplicates rejected)."""

    def decorator(fn: ModuleCounter) -> ModuleCounter:
        if name in MODULE_COUNTERS:
            raise ValueError(f"module counter {name!r} already registered")
        MODULE_COUNTERS[name] = fn
        return fn

    return decorator


def numel(shape: Sequence[int]) -> int:
    """Number of elements of a tensor of ``shape``."""
    return int(math.prod(shape))


_numel = numel


def class_path(cls: type) -> str:
    """``nn.Conv2d -> "torch.nn.modules.conv.Conv2d"`` (how ModuleCall.module_class spells it)."""
    return f"{cls.__module__}.{cls.__qualname__}"


def first_in(call: ModuleCall) -> tuple[int, ...]:
    """Shape of a module call's first tensor input (hook counters' ``input[0]``)."""
    return call.input_shapes[0] if call.input_shapes else ()


def first_out(call: ModuleCall) -> tuple[int, ...]:
    """Shape of a module call's first tensor output (hook counters' ``output``)."""
    return call.output_shapes[0] if call.output_shapes else ()


@event_counter("zero")
def _zero(e: OpEvent) -> int:
    """Not counted."""
    return 0


@event_counter("macs")
def _macs(e: OpEvent) -> int:
    """The event's MACs (bias and other extra FLOPs excluded)."""
    return e.macs


@event_counter("extra")
def _extra(e: OpEvent) -> int:
    """The event's extra FLOPs only."""
    return e.extra_flops


@event_counter("flops")
def _flops(e: OpEvent) -> int:
    """Canonical FLOPs: 2 x MACs + extra FLOPs."""
    return e.flops


@event_counter("2*macs")
def _two_macs(e: OpEvent) -> int:
    """FLOPs of the MACs only (torch's FlopCounterMode convention)."""
    return 2 * e.macs


@event_counter("macs+extra")
def _macs_plus_extra(e: OpEvent) -> int:
    """MACs plus extra FLOPs in one number (MAC-unit counters that add bias etc.)."""
    return e.macs + e.extra_flops


@event_counter("out_numel")
def _out_numel(e: OpEvent) -> int:
    """Elements of the first output."""
    return _numel(e.output_shapes[0]) if e.output_shapes else 0


@event_counter("in_numel")
def _in_numel(e: OpEvent) -> int:
    """Elements of the first tensor input."""
    return _numel(e.input_shapes[0]) if e.input_shapes else 0


@event_counter("conv_by_output")
def _conv_by_output(e: OpEvent) -> int:
    """Convolution MACs with transposed convolutions priced by their *output*
    size as if direct: ``numel(out) * (Cin/g) * prod(k)`` (thop's convention).
    Direct convolutions and non-convolution events: the event's MACs."""
    if e.category is not Category.CONV or not e.arg("transposed", False):
        return e.macs
    w = e.input_shapes[1]
    groups = int(e.arg("groups", 1) or 1)
    return _numel(e.output_shapes[0]) * (w[0] // groups) * _numel(w[2:])


def value_correction(name: str, reason: str) -> Callable[[ValueCorrection], ValueCorrection]:
    """Decorator: register a value correction under ``name``; ``reason`` names
    its cause in the diff report (duplicates rejected)."""

    def decorator(fn: ValueCorrection) -> ValueCorrection:
        if name in VALUE_CORRECTIONS:
            raise ValueError(f"value correction {name!r} already registered")
        VALUE_CORRECTIONS[name] = (fn, reason)
        return fn

    return decorator


@module_counter("zero")
def _module_zero(call: ModuleCall) -> int:
    """Not counted."""
    return 0


@module_counter("out_numel")
def _module_out_numel(call: ModuleCall) -> int:
    """Elements of the module's first output."""
    return _numel(call.output_shapes[0]) if call.output_shapes else 0


@module_counter("in_numel")
def _module_in_numel(call: ModuleCall) -> int:
    """Elements of the module's first tensor input."""
    return _numel(call.input_shapes[0]) if call.input_shapes else 0


@dataclass(frozen=True)
class EventRule:
    """Price events matching every given field with the event counter ``count``.

    Unset (``None``) fields match anything. ``op`` matches an overload name
    exactly or a packet name (``"aten.mm"`` matches ``"aten.mm.default"``).
    """

    count: str
    op: str | None = None
    category: Category | None = None
    module_type: str | None = None
    in_leaf: bool | None = None
    supported: bool | None = None
    reason: str = ""
    """How the diff report names this rule (e.g. "counts conv bias")."""
    kind: str = "rule"
    """Cause family in the diff report: rule, unsupported, missed-functional, reused-module."""
    traced: bool | None = None
    """Match on whether the event ran inside a formula-less custom op's Python
    kernel (``OpEvent.traced_from``)."""
    autograd_function: bool | None = None
    """Match on whether the event ran inside a custom ``autograd.Function``'s
    ``forward`` (``OpEvent.autograd_function``)."""
    patched: bool | str | None = None
    """Match on whether the event ran inside a call of a patched Python
    callable (``OpEvent.patched_in``; see ``Ruleset.patched_functions``); a
    string: inside a call of that callable (its dotted path)."""

    def matches(self, e: OpEvent, patched_in: str | None = None) -> bool:
        """Does ``e`` match? ``patched_in``: the outermost running patched call
        as the ruleset sees it (default ``e.patched_in``)."""
        if patched_in is None:
            patched_in = e.patched_in
        if self.op is not None and e.op != self.op and not e.op.startswith(self.op + "."):
            return False
        if self.category is not None and e.category is not self.category:
            return False
        if self.module_type is not None and e.module_type != self.module_type:
            return False
        if self.in_leaf is not None and e.in_leaf != self.in_leaf:
            return False
        if self.supported is not None and e.supported != self.supported:
            return False
        if self.traced is not None and bool(e.traced_from) != self.traced:
            return False
        if self.autograd_function is not None and bool(e.autograd_function) != self.autograd_function:
            return False
        if isinstance(self.patched, str):
            if patched_in != self.patched:
                return False
        elif self.patched is not None and bool(patched_in) != self.patched:
            return False
        return True


_UNKNOWN = object()


def _first_match(cache: dict[Any, Any], key: Any, rules: Sequence[Any], rule_class: type,
                 matches: Callable[[Any], bool]) -> Any:
    """The first of ``rules`` that ``matches``, remembered in ``cache`` by
    ``key`` (what ``rule_class.matches`` reads); not remembered when a rule is
    of a subclass, which may read more."""
    found = cache.get(key, _UNKNOWN)
    if found is _UNKNOWN:
        found = next((rule for rule in rules if matches(rule)), None)
        if len(cache) < 10_000 and all(type(rule) is rule_class for rule in rules):
            cache[key] = found
    return found


@dataclass(frozen=True)
class ModuleRule:
    """Price calls of modules of exactly this class with a module counter.

    ``module_type`` is a class name (``"Conv2d"``), a dotted class path
    (``"torch.nn.modules.conv.Conv2d"``) or ``"*"`` (any class: counters that
    price every module the same way, e.g. from its parameter counts);
    ``in_leaf`` restricts the rule to leaf (True) or non-leaf (False) calls.
    """

    module_type: str
    count: str
    suppress_inner: bool = True
    reason: str = ""
    """How the diff report names this rule (e.g. "BatchNorm = 4 per element")."""
    kind: str = "rule"
    """Cause family in the diff report: rule, unsupported, missed-functional, reused-module."""
    in_leaf: bool | None = None

    def matches(self, call: ModuleCall) -> bool:
        if self.in_leaf is not None and call.in_leaf != self.in_leaf:
            return False
        return self.module_type == "*" or self.module_type in (call.module_type, call.module_class)


@dataclass(frozen=True)
class Ruleset:
    """A counting convention, as data. See the module docstring."""

    name: str
    unit: Literal["MAC", "FLOP"]
    description: str
    event_rules: tuple[EventRule, ...] = ()
    default: str = "zero"
    module_rules: tuple[ModuleRule, ...] = ()
    per_sample: bool = False
    grad_enabled: bool = False
    """Record the pass with autograd on, as the backend runs it (eval-mode
    fused kernels such as ``_native_multi_head_attention`` are then not taken)."""
    module_hooks: bool = False
    """The backend attaches a hook to every module: record the pass with a
    no-op hook on each (fast paths that refuse to run when a module has hooks,
    ``nn.TransformerEncoderLayer``'s, are then not taken; with autograd off,
    ``nn.TransformerEncoder`` still turns a padded batch into a nested tensor)."""
    patched_functions: tuple[str, ...] = ()
    """Python callables the backend monkeypatches to count their calls, by
    dotted path (``"torch.nn.functional.relu"``, ``"torch.Tensor.matmul"``):
    the reference records the pass with the same callables wrapped, each call
    an event ``py:<path>`` (no cost of its own, the call's arguments in
    ``op_args``) that event rules can price; see
    :func:`~flopaudit.reference.engine.record`."""
    default_reason: str = ""
    """How the report names what ``default`` does to events no rule matches;
    empty: derived per event (unsupported op, module type without a rule, or
    functional op outside any leaf module)."""
    hooks_per_name: bool = False
    """The backend registers its counting hook once per *name* of a module
    (it walks the tree with ``nn.Module.apply``, which visits a module shared
    by two parents twice), so every call of a module with n names is counted
    n times (thop). Applies to module-rule counts (see :func:`name_shares`)."""
    sums_per_name: bool = False
    """The backend totals its per-module counts by walking the module tree by
    name (``children()``), so a shared module's count is added once per name
    (thop, ptflops-pytorch). Applies to module-rule counts."""
    eval_mode: bool = False
    """The backend calls ``model.eval()`` before its pass (thop, ptflops): a
    model given in train mode is recorded for it in eval mode (branches on
    ``self.training``, such as auxiliary heads, then do not run), every
    module's own flag put back afterwards."""
    value_corrections: tuple[str, ...] = ()
    """Named :data:`VALUE_CORRECTIONS` applied to the prediction: what the
    backend reads from the model's values, which a recording of shapes does
    not hold (torchinfo counts a pruned weight by its mask's ones). Each is
    booked as a cause of its own."""
    drops_dead_code: bool = False
    """The backend counts a JIT trace of the pass, which keeps only the work
    whose result reaches the output or is written to a parameter, buffer or
    input (fvcore): the reference records its pass with
    :class:`~flopaudit.reference.liveness.LivenessMode` and books the work
    the trace drops as a cause of its own."""

    def __post_init__(self) -> None:
        unknown = [r.count for r in self.event_rules if r.count not in EVENT_COUNTERS]
        if self.default not in EVENT_COUNTERS:
            unknown.append(self.default)
        unknown += [r.count for r in self.module_rules if r.count not in MODULE_COUNTERS]
        unknown += [name for name in self.value_corrections if name not in VALUE_CORRECTIONS]
        if unknown:
            raise ValueError(f"ruleset {self.name!r} names unknown counters: {unknown}")

    def count_event(self, e: OpEvent) -> int:
        if self.foreign(e):
            return 0
        rule = self.event_rule(e)
        return EVENT_COUNTERS[rule.count if rule else self.default](e)

    def event_rule(self, e: OpEvent) -> EventRule | None:
        """The first event rule matching ``e`` (None: ``default`` prices it)."""
        patched_in = self.patched_in(e)
        # What EventRule.matches reads of an event: events alike in it get the same rule.
        key = (e.op, e.category, e.module_type, e.in_leaf, e.supported, bool(e.traced_from),
               bool(e.autograd_function), patched_in)
        return _first_match(self._rule_of, key, self.event_rules, EventRule,
                            lambda rule: rule.matches(e, patched_in))

    @functools.cached_property
    def _rule_of(self) -> dict[tuple[Any, ...], EventRule | None]:
        """:meth:`event_rule`'s answers by what the rules read of an event."""
        return {}

    @functools.cached_property
    def _patched(self) -> frozenset[str]:
        return frozenset(self.patched_functions)

    def patched_in(self, e: OpEvent) -> str:
        """The outermost call of one of *this* ruleset's patched functions
        running when ``e`` was recorded ('' if none): a recording may have been
        made with more functions patched, for several rulesets at once."""
        if not e.patched_stack:
            return e.patched_in if e.patched_in in self._patched else ""
        return next((p for p in e.patched_stack if p in self._patched), "")

    def foreign(self, e: OpEvent) -> bool:
        """Is ``e`` the call of a function patched for another ruleset (not counted here)?"""
        return e.op.startswith(PATCHED_CALL_PREFIX) and e.op[len(PATCHED_CALL_PREFIX):] not in self._patched

    def module_rule(self, call: ModuleCall) -> ModuleRule | None:
        """The first module rule matching ``call`` (None: its operators are priced one by one)."""
        key = (call.in_leaf, call.module_type, call.module_class)  # what ModuleRule.matches reads
        return _first_match(self._module_rule_of, key, self.module_rules, ModuleRule, lambda rule: rule.matches(call))

    @functools.cached_property
    def _module_rule_of(self) -> dict[tuple[Any, ...], ModuleRule | None]:
        """:meth:`module_rule`'s answers by what the rules read of a call."""
        return {}


@dataclass(frozen=True)
class RulesetTotals:
    """One ruleset's view of a recording, in the ruleset's ``unit``.

    ``per_module`` is inclusive of children (``""`` = root); ``per_op`` keys
    are operator names or ``module:<Class>`` for module-rule counts.
    """

    ruleset: str
    unit: str
    total: int
    per_module: dict[str, int] = field(default_factory=dict)
    per_op: dict[str, int] = field(default_factory=dict)
    per_category: dict[str, int] = field(default_factory=dict)


def priced_calls(
    calls: Sequence[ModuleCall], ruleset: Ruleset
) -> Iterator[tuple[ModuleCall, ModuleRule, range]]:
    """Module calls priced by ``ruleset``'s module rules, in call order.

    Yields each call with its rule and the indices of the events it covers
    (empty unless the rule suppresses its inner ops). A call nested in a call
    already priced by a suppressing rule is skipped, as hook counters that
    stop at a priced module do.
    """
    if not ruleset.module_rules:
        return
    suppressing: set[int] = set()
    for i, call in enumerate(calls):
        ancestor, inside = call.parent, False
        while ancestor >= 0:
            if ancestor in suppressing:
                inside = True
                break
            ancestor = calls[ancestor].parent
        rule = None if inside else ruleset.module_rule(call)
        if rule is None:
            continue
        if rule.suppress_inner:
            suppressing.add(i)
            yield call, rule, range(*call.events)
        else:
            yield call, rule, range(0)


def name_shares(call: ModuleCall, count: int, ruleset: Ruleset) -> list[tuple[str, Sequence[str], int]]:
    """How a module-rule count of ``call`` lands on the module's names.

    Returns ``(name, stack, amount)`` entries: the stack the amount is
    attributed to (the call's runtime stack for its first name; the name's
    dotted prefixes for the others) and what is counted there. A module with
    one name, or a ruleset that counts each call once, gives one entry
    ``(call.path, call.stack, count)``; with n names ``hooks_per_name``
    multiplies each call by n and ``sums_per_name`` adds it under every name,
    so a backend doing both counts a shared module n x n times.
    """
    names = call.names
    if len(names) == 1 or not (ruleset.hooks_per_name or ruleset.sums_per_name):
        return [(call.path, call.stack, count)]
    per_name = count * len(names) if ruleset.hooks_per_name else count
    if not ruleset.sums_per_name:
        return [(call.path, call.stack, per_name)]
    return [(name, call.stack if name == call.path else _name_stack(name), per_name) for name in names]


def _name_stack(name: str) -> tuple[str, ...]:
    """``"a.b.c" -> ("", "a", "a.b", "a.b.c")``: a module path and its ancestors by name."""
    parts = name.split(".")
    return ("",) + tuple(".".join(parts[: i + 1]) for i in range(len(parts)))


#: A category's report name ("unsupported" for None); ``Enum.value`` is slow.
_CATEGORY_NAME: dict[Category | None, str] = {**{c: c.value for c in Category}, None: "unsupported"}


def apply(events: Sequence[OpEvent], calls: Sequence[ModuleCall], ruleset: Ruleset,
          batch_size: int | None = None) -> RulesetTotals:
    """Price ``events`` (and module ``calls``) under ``ruleset``."""
    total = 0
    per_module: dict[str, int] = {}
    per_op: dict[str, int] = {}
    per_category: dict[str, int] = {}

    def add(n: int, stack: Sequence[str], op: str, category: str) -> None:
        nonlocal total
        if not n:
            return
        total += n
        for path in dict.fromkeys(stack or ("",)):
            per_module[path] = per_module.get(path, 0) + n
        per_op[op] = per_op.get(op, 0) + n
        per_category[category] = per_category.get(category, 0) + n

    covered = [False] * len(events)
    for call, rule, inner in priced_calls(calls, ruleset):
        for _name, stack, amount in name_shares(call, MODULE_COUNTERS[rule.count](call), ruleset):
            add(amount, stack, f"module:{call.module_type}", "module")
        for j in inner:
            covered[j] = True
    # Without event rules every event but a foreign one is priced by ``default``.
    default = None if ruleset.event_rules else EVENT_COUNTERS[ruleset.default]
    for j, e in enumerate(events):
        if not covered[j]:
            n = ruleset.count_event(e) if default is None else (0 if ruleset.foreign(e) else default(e))
            add(n, e.module_stack, e.op, _CATEGORY_NAME[e.category])
    if ruleset.per_sample and batch_size:
        def scale(n: int) -> int:
            return round(n / batch_size)
        total = scale(total)
        per_module = {k: scale(v) for k, v in per_module.items()}
        per_op = {k: scale(v) for k, v in per_op.items()}
        per_category = {k: scale(v) for k, v in per_category.items()}
    return RulesetTotals(ruleset.name, ruleset.unit, total, per_module, per_op, per_category)


CANONICAL = Ruleset(
    name="canonical",
    unit="FLOP",
    description="Everything: FLOPs = 2 x MACs + extra FLOPs (bias, norms, activations, pools, softmax, "
    "elementwise, interpolation) for the whole batch.",
    default="flops",
)

CANONICAL_MACS = Ruleset(
    name="canonical-macs",
    unit="MAC",
    description="MACs of every contraction (conv, matmul family, attention, RNN gates), whole batch, bias excluded.",
    default="macs",
)

TORCHVISION = Ruleset(
    name="torchvision",
    unit="MAC",
    description="torchvision weight metadata meta['_ops'] (labelled GFLOPS): MACs of convolutions (transposed "
    "ones by input size) and of the matmul family (mm/addmm/bmm, attention score and value products), "
    "bias excluded, nothing else. Produced in pytorch/vision PR 6936 by a dispatch-mode counter "
    "based on Chillee's flop counter. # NB: RNN gate matmuls are included (they are matmuls); "
    "no torchvision classification model has an RNN.",
    event_rules=tuple(EventRule("macs", category=c) for c in sorted(CONTRACTION_CATEGORIES, key=lambda c: c.value)),
    default="zero",
)

RULESETS: dict[str, Ruleset] = {}


def register_ruleset(ruleset: Ruleset) -> Ruleset:
    """Make ``ruleset`` available by name (duplicates rejected)."""
    if ruleset.name in RULESETS:
        raise ValueError(f"ruleset {ruleset.name!r} already registered")
    RULESETS[ruleset.name] = ruleset
    return ruleset


def get_ruleset(ruleset: str | Ruleset) -> Ruleset:
    """A ruleset by name (or the ruleset itself)."""
    if isinstance(ruleset, Ruleset):
        return ruleset
    try:
        return RULESETS[ruleset]
    except KeyError:
        raise ValueError(f"unknown ruleset {ruleset!r}; known: {', '.join(sorted(RULESETS))}") from None


for _rs in (CANONICAL, CANONICAL_MACS, TORCHVISION):
    register_ruleset(_rs)

__all__ = [
    "CANONICAL",
    "CANONICAL_MACS",
    "EVENT_COUNTERS",
    "EventRule",
    "MODULE_COUNTERS",
    "ModuleRule",
    "RULESETS",
    "Ruleset",
    "RulesetTotals",
    "TORCHVISION",
    "VALUE_CORRECTIONS",
    "apply",
    "event_counter",
    "get_ruleset",
    "module_counter",
    "name_shares",
    "register_ruleset",
    "value_correction",
]
