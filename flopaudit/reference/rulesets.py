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
  counters do (``type(m) in table``), never subclasses. A call of a module
  inside a module priced by a suppressing rule (its descendant in the module
  tree, called during that call) is skipped; another module called there (a
  module passed in and called, as peft's DoRA layer calls its sibling
  ``lora_A``) is priced on its own, its events left out of the caller's.
* ``unit`` (``"MAC"`` or ``"FLOP"``): what the resulting integers mean.
* ``per_sample``: divide totals by the batch size (ptflops' convention).
* ``closed_form``: for a rule of thumb that does not price operators one by
  one (``6 N D``, a closed form of the model's dimensions), the name of a
  *closed-form counter* (:data:`CLOSED_FORMS`) that prices the whole
  recording and books its difference from the canonical count cause by
  cause; its event and module rules are then unused.

Counters are referenced by *name* so that rulesets stay plain data; the
functions live in two registries, :data:`EVENT_COUNTERS`
(``OpEvent -> int``) and :data:`MODULE_COUNTERS` (``ModuleCall -> int``),
extended with :func:`event_counter` / :func:`module_counter`. A family of
counters that differ only in numbers is one parameterised factory
(:func:`elementwise`, :func:`affine_norm`, :func:`canonical_cost`), and rules
for a list of module classes or patched callables come from
:func:`exact_type_rules` and :func:`patched_call_rules`. A backend's ruleset
adds its own counters (e.g. ``"thop.conv"``) and one ``Ruleset`` value, then
calls :func:`register_ruleset`. A rule's ``kind`` is a
:class:`~flopaudit.records.CauseKind`, checked when the rule is made. How a
recording is priced under a ruleset: :mod:`flopaudit.reference.pricing`.

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
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Sequence, TypeVar

from flopaudit.module_paths import ancestors
from flopaudit.records import CauseKind
from flopaudit.reference.engine import PATCHED_CALL_PREFIX, ModuleCall, OpEvent
from flopaudit.reference.registry import CONTRACTION_CATEGORIES, Category

EventCounter = Callable[[OpEvent], int]
ModuleCounter = Callable[[ModuleCall], int]

EVENT_COUNTERS: dict[str, EventCounter] = {}
MODULE_COUNTERS: dict[str, ModuleCounter] = {}
CLOSED_FORMS: dict[str, Callable[..., Any]] = {}
"""Closed-form counters: ``(events, calls, facts) -> ClosedFormCount`` (see
:mod:`flopaudit.reference.backend_rulesets.rules_of_thumb`), ``facts`` being a
:class:`flopaudit.rules_of_thumb.ModelFacts` or None."""

ValueCorrection = Callable[[Any, Sequence[ModuleCall]], Iterator[tuple[ModuleCall, int]]]
"""``(model, module calls) -> (call, MACs)`` pairs: what a counter reads from
the model's values rather than from shapes (a pruning mask's ones)."""
VALUE_CORRECTIONS: dict[str, tuple[ValueCorrection, str]] = {}


Counter = TypeVar("Counter", bound=Callable[..., int])


def _registrar(table: dict[str, Any], what: str) -> Callable[[str], Callable[[Counter], Counter]]:
    """A decorator factory registering counters in ``table`` by name (duplicates rejected)."""

    def register(name: str) -> Callable[[Counter], Counter]:
        def decorator(fn: Counter) -> Counter:
            if name in table:
                raise ValueError(f"{what} {name!r} already registered")
            table[name] = fn
            return fn

        return decorator

    register.__doc__ = f"Decorator: register a {what} under ``name`` (duplicates rejected)."
    return register


event_counter = _registrar(EVENT_COUNTERS, "event counter")
module_counter = _registrar(MODULE_COUNTERS, "module counter")
closed_form = _registrar(CLOSED_FORMS, "closed-form counter")

#: Module counters that also read the model's inventory: ``(call, modules) -> int``.
INVENTORY_COUNTERS: set[str] = set()


def inventory_module_counter(name: str) -> Callable[[Counter], Counter]:
    """Decorator: register a module counter ``(call, modules) -> int`` that
    also reads the model's :class:`~flopaudit.reference.inventory.ModelInventory`
    (what a module holds beyond its own parameters, e.g. a container's
    ``named_parameters()``); it counts 0 where no inventory is given."""
    register = module_counter(name)

    def decorator(fn: Counter) -> Counter:
        INVENTORY_COUNTERS.add(name)
        return register(fn)

    return decorator


def count_module(name: str, call: ModuleCall, modules: Any = None) -> int:
    """Module counter ``name`` on ``call`` (with ``modules`` if it reads the inventory)."""
    if name in INVENTORY_COUNTERS:
        return MODULE_COUNTERS[name](call, modules) if modules is not None else 0  # type: ignore[call-arg]
    return MODULE_COUNTERS[name](call)


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


def attr(call: ModuleCall, name: str, default: Any = None) -> Any:
    """A hyper-parameter the module had when called (``in_features``, ``groups``...), or ``default``."""
    return dict(call.attrs).get(name, default)


def param_shape(call: ModuleCall, name: str) -> tuple[int, ...] | None:
    """The shape of the module's own parameter ``name`` (``"weight"``, ``"bias"``), None if it has none."""
    return dict(call.param_shapes).get(name)


def call_arg(e: OpEvent, position: int, name: str, default: Any = None) -> Any:
    """An argument of a patched Python call (``py:`` event, ``e.op_args``): positional ``#position``
    or keyword ``name``, else ``default``."""
    args = dict(e.op_args)
    return args.get(f"#{position}", args.get(name, default))


#: Why a counter that reads shapes only prices a product of a sparse tensor as if it were dense.
R_SPARSE_AS_DENSE = ("a sparse operand priced as if dense (M x K x N from its shape; the reference counts one "
                     "multiply-add per stored element and column)")

#: The operators of a dynamically quantized LSTM/GRU (``torch.ao.nn.quantized.dynamic``): packed
#: weights, one call for the whole stack (see :func:`flopaudit.reference.formulas.rnn.quantized_rnn`).
QUANTIZED_RNN_OPS = ("aten.quantized_lstm", "aten.quantized_gru")

#: Where the built-in formulas live: ``EventRule.family`` names a module under it.
FORMULAS_PACKAGE = "flopaudit.reference.formulas"


def aten_calls(*names: str) -> tuple[str, ...]:
    """The paths of ``torch.ops.aten.<name>.default``: the operator entry points that a
    graph exported with ``torch.export`` (or any code calling ``torch.ops.aten``)
    calls where a model's source calls ``F.conv2d`` or ``torch.matmul``; a JIT trace
    and torch.profiler see the same operator either way, so a ruleset that prices
    the Python call patches these too (their arguments come in the same places).
    # NB: while a pass is recorded ``torch.ops.aten.<name>.default`` is the wrapper:
    # code that reads that attribute during the pass to compare an operator it is
    # handed (rather than once, at import) sees the wrapper, not the operator.
    """
    return tuple(f"torch.ops.aten.{name}.default" for name in names)


def traced_call_sites(*paths: str) -> tuple[str, ...]:
    """``paths``, each followed by the name that code generated by ``torch.fx`` calls
    the same callable by, where that differs: a graph module (``torch.fx.symbolic_trace``,
    torchvision's ``create_feature_extractor``, timm's FX feature extraction) calls
    ``F.linear`` as ``torch._C._nn.linear``, ``F.scaled_dot_product_attention`` as
    ``torch._C._nn.scaled_dot_product_attention``, ``torch.einsum`` as
    ``torch.functional.einsum``, past a patch of the other name. A JIT trace and
    torch.profiler see the same operator either way, so their rulesets, which price the
    Python call, patch both names; the second only for a model holding a graph module
    (:data:`~flopaudit.reference.patching.GRAPH_CODE_NAMES` says why). (A counter that
    patches the names itself, such as calflops, does not see a call through the other one:
    its ruleset lists one name.) For the same reason each function's names in the model's
    own modules are patched too (``from torch import einsum``: :data:`~flopaudit.reference.patching.IMPORTED_SUFFIX`)."""
    import importlib

    from torch.fx.node import _get_qualified_name

    from flopaudit.reference.patching import GRAPH_CODE_NAMES, imported_names

    out: list[str] = []
    for path in paths:
        out.append(path)
        try:
            module, _, name = path.rpartition(".")
            obj = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # a method, a path of another version
            continue
        out.append(imported_names(path))
        try:
            site = _get_qualified_name(obj)
            home, _, attr = site.rpartition(".")
            same = getattr(importlib.import_module(home), attr, None) is obj
        except (ImportError, AttributeError, RuntimeError, ValueError):  # a method, a path of another version
            continue
        if same and site != path:
            out.append(site)
            if site not in paths:
                GRAPH_CODE_NAMES.add(site)
    return tuple(dict.fromkeys(out))


def string_padding(e: OpEvent) -> bool:
    """A ``py:`` call of ``F.convNd``/``torch.convNd`` with ``padding="same"``
    or ``"valid"``: ATen runs it as ``aten::_convolution_mode``, which a JIT
    trace records as such and torch.profiler does not price as a convolution."""
    return isinstance(call_arg(e, 4, "padding", 0), str)


Shaped = OpEvent | ModuleCall
"""What a shape counter reads: an operator event or a module call (both have
``input_shapes`` and ``output_shapes``)."""


def elementwise(input_scale: int = 0, output_scale: int = 0) -> Callable[[Shaped], int]:
    """A counter of ``input_scale`` per element of the first tensor input plus
    ``output_scale`` per element of the first tensor output (fvcore's
    ``elementwise_flop_counter``); a side without a tensor counts 0. Serves
    as an event counter and as a module counter."""

    def count(x: Shaped) -> int:
        n = 0
        if input_scale and x.input_shapes:
            n += input_scale * _numel(x.input_shapes[0])
        if output_scale and x.output_shapes:
            n += output_scale * _numel(x.output_shapes[0])
        return n

    count.__doc__ = f"{input_scale} per input element + {output_scale} per output element."
    return count


def affine_norm(plain: int, affine: int, is_affine: Callable[[Shaped], bool]) -> Callable[[Shaped], int]:
    """A counter of a normalisation: ``plain`` per element of the first tensor input, ``affine``
    per element where ``is_affine`` says the norm has a weight (how each backend tells differs)."""

    def count(x: Shaped) -> int:
        n = _numel(x.input_shapes[0]) if x.input_shapes else 0
        return n * (affine if is_affine(x) else plain)

    count.__doc__ = f"{plain} per input element, {affine} with an affine weight."
    return count


def _zero(x: Shaped) -> int:
    """Not counted."""
    return 0


for _name, _counter in (("zero", _zero), ("out_numel", elementwise(output_scale=1)),
                        ("in_numel", elementwise(input_scale=1))):
    event_counter(_name)(_counter)
    module_counter(_name)(_counter)


def canonical_cost(mac_scale: int, extra_scale: int) -> EventCounter:
    """An event counter of ``mac_scale`` per canonical MAC plus ``extra_scale`` per extra FLOP
    (bias, norms, activations...): the canonical count seen in another unit or scope."""

    def count(e: OpEvent) -> int:
        return mac_scale * e.macs + extra_scale * e.extra_flops

    count.__doc__ = f"{mac_scale} x MACs + {extra_scale} x extra FLOPs."
    return count


def dense_product(scale: int) -> EventCounter:
    """An event counter of ``scale`` x ``M*K*N`` (times the batch) of a product event, from its
    last two tensor inputs' shapes, as a counter that reads shapes only prices it: a sparse
    operand counted as if it were dense (the reference prices its stored elements;
    :func:`flopaudit.reference.formulas.matmul.product_macs`)."""

    def count(e: OpEvent) -> int:
        if len(e.input_shapes) < 2:
            return 0
        a, b = e.input_shapes[-2], e.input_shapes[-1]
        return scale * numel(a[:-2]) * a[-2] * a[-1] * b[-1] if len(a) >= 2 and b else 0

    count.__doc__ = f"{scale} x M*K*N of a product from its operands' shapes (a sparse one as if dense)."
    return count


for _scale in (2, 4):  # FLOPs of one product priced from its shapes; of two (torch.profiler's sparse aten::mm)
    event_counter(f"{_scale}*dense_product")(dense_product(_scale))

#: Products that reach a dispatch mode whole only where autograd does not decompose them
#: (inside ``torch.inference_mode``, on inference tensors): ``F.linear``, ``torch.matmul``/``@``.
COMPOSITE_PRODUCTS = ("aten.linear", "aten.matmul")


@event_counter("2*composite_product")
def composite_product(e: OpEvent) -> int:
    """An ``aten.linear``/``aten.matmul`` event (:data:`COMPOSITE_PRODUCTS`) as a counter that
    prices ``mm``/``addmm``/``bmm`` sees it: run whole, it runs those (``torch.profiler``
    records them inside it; ``FlopCounterMode``, without a formula for it, decomposes it):
    2 x its MACs (bias excluded; a 1-D first operand is made a row: ``mm``); with a 1-D
    second operand (a matrix-vector or dot product) it runs ``mv``/``dot`` instead: 0."""
    if len(e.input_shapes) < 2 or len(e.input_shapes[1]) < 2:
        return 0
    return 2 * e.macs


def composite_product_rules(how: str) -> tuple[EventRule, ...]:
    """The rules pricing :data:`COMPOSITE_PRODUCTS` events by :func:`composite_product`, for a
    counter that sees the products such an operator runs (``how``: the way it sees them)."""
    reason = ("F.linear/matmul run whole (inside torch.inference_mode, where autograd does not decompose "
              f"them): {how} the mm/addmm/bmm they run = 2 x MACs; a 1-D operand (mv/dot) 0")
    return tuple(EventRule("2*composite_product", op=op, reason=reason) for op in COMPOSITE_PRODUCTS)


#: The event counters that are :func:`canonical_cost` counters: name -> (MAC scale, extra-FLOP scale).
#: A ruleset pricing every event with one of them sees sums of the canonical cost, which
#: :func:`flopaudit.reference.pricing.price` takes from its summary instead of pricing events again.
CANONICAL_COSTS: dict[str, tuple[int, int]] = {}

for _name, _macs, _extra in (
    ("macs", 1, 0),  # MACs only (bias and other extra FLOPs excluded)
    ("extra", 0, 1),  # extra FLOPs only
    ("flops", 2, 1),  # canonical FLOPs: 2 x MACs + extra FLOPs
    ("2*macs", 2, 0),  # FLOPs of the MACs only (torch's FlopCounterMode convention)
    ("macs+extra", 1, 1),  # MACs plus extra FLOPs in one number (MAC-unit counters that add bias etc.)
):
    event_counter(_name)(canonical_cost(_macs, _extra))
    CANONICAL_COSTS[_name] = (_macs, _extra)


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
    kind: CauseKind = CauseKind.RULE
    """Cause family in the diff report (a string naming a :class:`CauseKind` is converted)."""
    traced: bool | None = None
    """Match on whether the event ran inside a formula-less custom op's Python
    kernel (``OpEvent.traced_from``)."""
    decomposed: bool | None = None
    """Match on whether the event is part of an operator the recorder received whole and
    decomposed (``OpEvent.decomposed_from``)."""
    autograd_function: bool | None = None
    """Match on whether the event ran inside a custom ``autograd.Function``'s
    ``forward`` (``OpEvent.autograd_function``)."""
    patched: bool | str | None = None
    """Match on whether the event ran inside a call of a patched Python
    callable (``OpEvent.patched_in``; see ``Ruleset.patched_functions``); a
    string: inside a call of that callable (its dotted path)."""
    sparse: bool | tuple[str, ...] | None = None
    """Match on whether a tensor input of the event is sparse (``OpEvent.sparse``); a tuple of
    layouts (``("torch.sparse_csr", "torch.sparse_csr")``): on its sparse inputs' layouts."""
    family: str | None = None
    """Match events priced by a built-in formula of this family: its module under
    ``flopaudit.reference.formulas`` (``"linalg"``, ``"quantized"``)."""
    summed: str | None = None
    """Match on how autograd's engine sums the two gradients an ``aten.add`` adds, where no
    dispatch mode runs (``OpEvent.summed``: ``"in place"``, ``"out of place"``, ``""`` for an
    add of anything else)."""
    in_module_call: bool | None = None
    """Match on whether a call of one of the model's modules through ``nn.Module.__call__`` was
    running (``OpEvent.call_index >= 0``): none is where the root is not called that way
    (gpytorch's modules call their ``forward`` themselves) or after it returned."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CauseKind(self.kind))

    @staticmethod
    def key(e: OpEvent, patched_in: str) -> tuple[Any, ...]:
        """Everything of ``e`` that :meth:`matches` reads: events with one key match the same rules."""
        return (e.op, e.category, e.module_type, e.in_leaf, e.supported, bool(e.traced_from),
                bool(e.decomposed_from), bool(e.autograd_function), patched_in, e.sparse, e.formula,
                e.call_index >= 0, e.summed)

    def matches(self, e: OpEvent, patched_in: str | None = None) -> bool:
        """Does ``e`` match? ``patched_in``: the outermost running patched call
        as the ruleset sees it (default ``e.patched_in``). Reads only what :meth:`key` holds."""
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
        if self.decomposed is not None and bool(e.decomposed_from) != self.decomposed:
            return False
        if self.autograd_function is not None and bool(e.autograd_function) != self.autograd_function:
            return False
        if isinstance(self.patched, str):
            if patched_in != self.patched:
                return False
        elif self.patched is not None and bool(patched_in) != self.patched:
            return False
        if self.sparse is not None and (bool(e.sparse) if type(self.sparse) is bool else e.sparse) != self.sparse:
            return False  # (a bool: any sparse input or none; a tuple: those layouts)
        if self.family is not None and not e.formula.startswith(f"{FORMULAS_PACKAGE}.{self.family}."):
            return False
        if self.in_module_call is not None and (e.call_index >= 0) != self.in_module_call:
            return False
        if self.summed is not None and e.summed != self.summed:
            return False
        return True


@dataclass(frozen=True)
class ModuleRule:
    """Price calls of modules of exactly this class with a module counter.

    ``module_type`` is a class name (``"Conv2d"``), a dotted class path
    (``"torch.nn.modules.conv.Conv2d"``) or ``"*"`` (any class: counters that
    price every module the same way, e.g. from its parameter counts);
    ``in_leaf`` restricts the rule to leaf (True) or non-leaf (False) calls.
    ``subclasses``: ``module_type`` is a dotted class path and the rule also
    prices calls of its subclasses (a counter matching with ``isinstance``).
    """

    module_type: str
    count: str
    suppress_inner: bool = True
    reason: str = ""
    """How the diff report names this rule (e.g. "BatchNorm = 4 per element")."""
    kind: CauseKind = CauseKind.RULE
    """Cause family in the diff report (a string naming a :class:`CauseKind` is converted)."""
    in_leaf: bool | None = None
    subclasses: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", CauseKind(self.kind))

    def matches(self, call: ModuleCall) -> bool:
        if self.in_leaf is not None and call.in_leaf != self.in_leaf:
            return False
        if self.module_type == "*" or self.module_type in (call.module_type, call.module_class):
            return True
        return self.subclasses and is_subclass(call.module_class, self.module_type)


@functools.cache
def is_subclass(path: str, base: str) -> bool:
    """Is the class at dotted ``path`` a subclass of the class at ``base``? Both
    are looked up among the modules already imported (a recorded model's class
    was imported to run it; nothing is imported here); False if either is not
    found (a class defined in a function, a module gone)."""
    cls, parent = _loaded_class(path), _loaded_class(base)
    return isinstance(cls, type) and isinstance(parent, type) and issubclass(cls, parent)


def _loaded_class(path: str) -> Any:
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        owner = sys.modules.get(".".join(parts[:cut]))
        if owner is None:
            continue
        for name in parts[cut:]:
            owner = getattr(owner, name, None)
        return owner
    return None


def exact_type_rules(classes: Sequence[type], count: str, reason: str, **options: Any) -> tuple[ModuleRule, ...]:
    """One :class:`ModuleRule` per class, matched by dotted class path (the exact type, as
    ``type(m) in table`` does in hook-based counters), all priced by module counter ``count``
    and named ``reason``; ``options`` are the other :class:`ModuleRule` fields."""
    return tuple(ModuleRule(class_path(c), count, reason=reason, **options) for c in classes)


def patched_call_rules(paths: Sequence[str], count: str, reason: str,
                       kind: CauseKind | str = CauseKind.RULE) -> tuple[tuple[EventRule, ...], tuple[EventRule, ...]]:
    """Rules for Python callables a backend counts per call (``Ruleset.patched_functions``).

    Returns ``(calls, inner)``: ``calls`` price each call's ``py:<path>``
    event with event counter ``count``, ``inner`` price the operators the
    call dispatches 0. Both book to ``reason``, so the report shows their net
    (the call's count minus its operators' canonical MACs). Where the two go
    in the ruleset's rule order decides nested calls: ``inner`` first makes a
    patched call inside another one count 0 (one opaque node), ``calls`` first
    prices it too (a wrapper that counts every call).
    """
    calls = tuple(EventRule(count, op=PATCHED_CALL_PREFIX + p, reason=reason, kind=kind) for p in paths)
    inner = tuple(EventRule("zero", patched=p, reason=reason, kind=kind) for p in paths)
    return calls, inner


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
    module_hooks: bool | Literal["children"] = False
    """The backend attaches hooks to the model's modules: True, to every module;
    ``"children"``, to the root's direct children only (ptflops' aten engine).
    The pass is recorded with a no-op hook on the same modules: fast paths
    that refuse to run when a module of theirs has hooks
    (``nn.TransformerEncoderLayer``'s, taken without autograd or with autograd
    on when nothing in it needs a gradient) are then not taken where the
    backend's hooks stop them; with autograd off, ``nn.TransformerEncoder``
    still turns a padded batch into a nested tensor."""
    patched_functions: tuple[str, ...] = ()
    """Python callables the backend monkeypatches to count their calls, by
    dotted path (``"torch.nn.functional.relu"``, ``"torch.Tensor.matmul"``):
    the reference records the pass with the same callables wrapped, each call
    an event ``py:<path>`` (no cost of its own, the call's arguments in
    ``op_args``) that event rules can price; see
    :func:`~flopaudit.reference.engine.record`."""
    calls_are_operators: bool = False
    """The backend sees each call of a ``patched_functions`` callable as the operator it
    dispatches (a node of a JIT trace, a profiler event), not as a Python call: where a
    tensor subclass's ``__torch_function__`` takes the call over (:attr:`OpEvent.taken_over`)
    that operator never runs and the backend sees the override's operators instead, so
    the call counts 0 and what runs inside it is priced as if no call were patched
    (fvcore, torchprofile, torch.profiler). False: the backend's wrapper counts the call
    itself, whatever runs it (ptflops, calflops, DeepSpeed)."""
    patched_calls_in_priced_modules: bool = False
    """The backend's patched functions count wherever they are called, inside a module
    that a module rule prices too (ptflops: its functional wrappers run beside its module
    hooks, so a tensor-subclass weight whose ``F.linear`` calls ``torch.mm`` is counted by
    the ``nn.Linear`` hook and the ``torch.mm`` wrapper): such ``py:`` events are priced by
    the event rules although the module rule covers the module's operators."""
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
    event_counts_per_name: bool = False
    """Event counts, too, are kept per module (the innermost module running
    the op) and totalled by a walk of the tree by name, so an op run inside a
    module with n names (a shared module or its descendants) is counted n
    times (calflops)."""
    counts_in_module_attributes: bool = False
    """Event counts are kept in an attribute of the module running them
    (``module.__macs__``) and totalled over the module tree: a ``torch.compile``
    wrapper (``OptimizedModule``) forwards attribute reads and writes to the
    module it wraps, so that module's own count is read once more under each
    wrapper's name (calflops, DeepSpeed; see :attr:`ModuleCall.wrapped_by`)."""
    copies_lost: bool = False
    """The backend keeps each module's hook count on the module (thop's ``total_ops``
    buffers, ptflops' ``__flops__``) and totals the model's modules: a copy of a module
    made during the pass carries the hooks and keeps its count on the copy, which the total
    never reads, so module-rule counts of copied calls (:attr:`ModuleCall.copied`) are 0,
    booked to ``reused-module``; so are event counts kept on the module running them
    (``counts_in_module_attributes``) inside a copy. False: a copy's calls are priced as
    the module's own (torchinfo's and torchsummary's rows)."""
    last_call_only: bool = False
    """Module-rule counts are stored on the module and overwritten by each
    call, so only the last call of each module counts (torchstat)."""
    params: str = "unique"
    """The parameter counter (:data:`flopaudit.reference.params.PARAM_COUNTERS`)
    that reproduces the backend's parameter count: ``"unique"`` (every
    parameter tensor once), ``"trainable"`` or the backend's own."""
    batch_scaled: bool = False
    """The backend counts one sample whatever the batch (torch-summary's
    Mult-Adds) and the adapter multiplies by the batch size: every count here
    is per sample, as the backend's own number (the view), and the
    prediction multiplies it by the batch size the recording was made with,
    as the adapter does."""
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
    trace_consumed: tuple[str, ...] = ()
    """Patched callables whose results the traced branch of the model consumes
    as tensors where a plain pass reads them as Python numbers (``.item()``,
    invisible to liveness): their work is never booked as dropped by the trace
    (torchvision's ``expand_boxes``, whose boxes feed the scripted mask paste)."""
    drops_dead_code: bool = False
    """The backend counts a JIT trace of the pass, which keeps only the work
    whose result reaches the output or is written to a parameter, buffer or
    input (fvcore): the reference records its pass with
    :class:`~flopaudit.reference.liveness.LivenessMode` and books the work
    the trace drops as a cause of its own."""
    closed_form: str = ""
    """A closed-form counter (:data:`CLOSED_FORMS`) pricing the whole recording
    in place of the rules (rules of thumb); '' for a ruleset of rules."""

    def __post_init__(self) -> None:
        unknown = [r.count for r in self.event_rules if r.count not in EVENT_COUNTERS]
        if self.default not in EVENT_COUNTERS:
            unknown.append(self.default)
        unknown += [r.count for r in self.module_rules if r.count not in MODULE_COUNTERS]
        unknown += [name for name in self.value_corrections if name not in VALUE_CORRECTIONS]
        if self.closed_form and self.closed_form not in CLOSED_FORMS:
            unknown.append(self.closed_form)
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
        return next((rule for rule in self.event_rules if rule.matches(e, patched_in)), None)

    def rule_finder(self) -> Callable[[OpEvent], EventRule | None]:
        """:meth:`event_rule` for one walk over a recording: the rules are matched once for each
        :meth:`EventRule.key` met (a recurrent layer's thousands of cell operators share a few keys)."""
        found: dict[tuple[Any, ...], EventRule | None] = {}
        rules = self.event_rules

        def event_rule(e: OpEvent) -> EventRule | None:
            patched_in = self.patched_in(e)
            key = EventRule.key(e, patched_in)
            if key in found:
                return found[key]
            rule = found[key] = next((r for r in rules if r.matches(e, patched_in)), None)
            return rule

        return event_rule

    @functools.cached_property
    def _patched(self) -> frozenset[str]:
        return frozenset(self.patched_functions)

    def patched_in(self, e: OpEvent) -> str:
        """The outermost call of one of *this* ruleset's patched functions
        running when ``e`` was recorded ('' if none): a recording may have been
        made with more functions patched, for several rulesets at once."""
        if not e.patched_stack:
            return e.patched_in if e.patched_in in self._patched else ""
        if e.taken_over and self.calls_are_operators:
            return next((p for i, p in enumerate(e.patched_stack) if p in self._patched and i not in e.taken_over), "")
        return next((p for p in e.patched_stack if p in self._patched), "")

    def foreign(self, e: OpEvent) -> bool:
        """Is ``e`` the call of a function patched for another ruleset, or one this ruleset
        does not see as a call (:attr:`calls_are_operators`)? It is not counted here."""
        if not e.op.startswith(PATCHED_CALL_PREFIX):
            return False
        if e.taken_over and self.calls_are_operators and len(e.patched_stack) in e.taken_over:
            return True
        return e.op[len(PATCHED_CALL_PREFIX):] not in self._patched

    def module_rule(self, call: ModuleCall) -> ModuleRule | None:
        """The first module rule matching ``call`` (None: its operators are priced one by one)."""
        return next((rule for rule in self.module_rules if rule.matches(call)), None)


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
    calls: Sequence[ModuleCall], ruleset: Ruleset, phase: str | None = None
) -> Iterator[tuple[ModuleCall, ModuleRule, Sequence[int]]]:
    """Module calls priced by ``ruleset``'s module rules, in call order (only
    those of ``phase``, when given: a training step's forward calls).

    Yields each call with its rule and the indices of the events it covers
    (empty unless the rule suppresses its inner ops). A call nested in a call
    already priced by a suppressing rule is skipped when its module is a
    descendant of that call's module in the module tree, as hook counters
    that stop at a priced module do (thop's ``dfs_count``, ptflops'
    ``accumulate_flops``: neither visits a priced module's children). A module
    that is not (a sibling passed in and called: peft's DoRA layer calls the
    ``lora_A`` and ``lora_B`` beside it) is hooked and summed on its own by
    every hook counter, so it is priced on its own, and the events of its call
    are left out of the caller's. With ``last_call_only``, every call of a
    module but its last is skipped (its events are then priced by the event
    rules).
    """
    if not ruleset.module_rules:
        return
    last = {call.path: i for i, call in enumerate(calls) if phase is None or call.phase == phase} \
        if ruleset.last_call_only else None
    priced: list[tuple[int, ModuleRule]] = []
    suppressing: set[int] = set()
    inner_calls: dict[int, list[int]] = {}
    """For a suppressing call, the suppressing calls priced on their own inside it."""
    for i, call in enumerate(calls):
        if phase is not None and call.phase != phase:
            continue
        if last is not None and last[call.path] != i:
            continue
        ancestor, around = call.parent, []
        while ancestor >= 0:
            if ancestor in suppressing:
                if _descends(call, calls[ancestor]):
                    break
                around.append(ancestor)
            ancestor = calls[ancestor].parent
        if ancestor >= 0:
            continue  # inside a priced module
        rule = ruleset.module_rule(call)
        if rule is None:
            continue
        if rule.suppress_inner:
            suppressing.add(i)
            for outer in around:
                inner_calls.setdefault(outer, []).append(i)
        priced.append((i, rule))
    for i, rule in priced:
        call = calls[i]
        if not rule.suppress_inner:
            yield call, rule, range(0)
        elif i not in inner_calls:
            yield call, rule, range(*call.events)
        else:
            own = set(range(*call.events))
            for k in inner_calls[i]:
                own.difference_update(range(*calls[k].events))
            yield call, rule, sorted(own)


def _descends(call: ModuleCall, outer: ModuleCall) -> bool:
    """Is ``call``'s module a descendant of ``outer``'s in the module tree (under any of their names)?"""
    if "" in outer.names:
        return True
    return any(name.startswith(prefix + ".") for prefix in outer.names for name in call.names)


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
    return [(name, call.stack if name == call.path else ancestors(name), per_name) for name in names]


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
    "CANONICAL_COSTS",
    "CANONICAL_MACS",
    "EVENT_COUNTERS",
    "EventRule",
    "MODULE_COUNTERS",
    "FORMULAS_PACKAGE",
    "QUANTIZED_RNN_OPS",
    "R_SPARSE_AS_DENSE",
    "ModuleRule",
    "RULESETS",
    "Ruleset",
    "RulesetTotals",
    "TORCHVISION",
    "CLOSED_FORMS",
    "VALUE_CORRECTIONS",
    "affine_norm",
    "aten_calls",
    "attr",
    "call_arg",
    "canonical_cost",
    "class_path",
    "closed_form",
    "elementwise",
    "count_module",
    "dense_product",
    "event_counter",
    "inventory_module_counter",
    "exact_type_rules",
    "first_in",
    "first_out",
    "get_ruleset",
    "module_counter",
    "name_shares",
    "numel",
    "param_shape",
    "patched_call_rules",
    "priced_calls",
    "register_ruleset",
    "value_correction",
]
