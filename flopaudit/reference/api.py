"""``count``, ``count_meta`` and ``apply_ruleset``: the reference counter's entry points."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping, Sequence, TypeVar

import torch
from torch import nn

from flopaudit.inputs import ModelInputs, holds_meta
from flopaudit.passes import INFERENCE_PASS, PHASES, Pass, pass_of
from flopaudit.reference import formulas as _formulas  # noqa: F401 - registers the built-in formulas
from flopaudit.reference.engine import ModuleCall, OpEvent, Recording, record
from flopaudit.reference.meta_workarounds import MetaWorkarounds, run_on_meta
from flopaudit.reference.pricing import PhaseSummary, Totals, apply, price
from flopaudit.reference.rulesets import Ruleset, RulesetTotals, get_ruleset


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts.

    ``total`` counts every reference (a tied weight reachable under two names
    counts twice), ``unique`` counts each parameter tensor once, ``trainable``
    the unique ones with ``requires_grad``; ``shared_tensors`` is how many
    parameter tensors are reachable under more than one name and
    ``shared_elements`` how many elements ``total`` counts more than once.
    """

    total: int
    unique: int
    trainable: int
    shared_tensors: int
    shared_elements: int


@dataclass(frozen=True)
class ReferenceCount:
    """Everything one reference count produced (treat the dicts as read-only).

    ``totals`` are canonical (MACs, extra FLOPs, FLOPs, bytes); ``ruleset``
    is the requested ruleset's view of the same events. ``per_module`` is
    inclusive of children, ``""`` being the root; ``unsupported`` maps each
    operator without a formula to its number of calls.
    """

    events: tuple[OpEvent, ...]
    module_call_records: tuple[ModuleCall, ...]
    totals: Totals
    per_module: dict[str, Totals]
    per_op: dict[str, Totals]
    per_category: dict[str, Totals]
    unsupported: dict[str, int]
    module_calls: dict[str, int]
    params: ParamCount
    ruleset: RulesetTotals
    batch_size: int | None = None
    device: str = ""
    notes: tuple[str, ...] = field(default=())
    traced_custom_ops: dict[str, int] = field(default_factory=dict)
    """``torch.library`` custom ops without a formula that were counted through
    their Python kernel (the operators it dispatched are in ``events``): op -> calls."""
    pass_: Pass = INFERENCE_PASS
    """What was counted: one inference forward pass, or one training step."""
    phases: dict[str, PhaseSummary] = field(default_factory=dict)
    """A training step's cost split by phase (``forward``, ``loss``, ``recompute``,
    ``backward``, ``optimizer``; :data:`flopaudit.passes.PHASES` order, phases
    with no event left out), each in all, per module and per operator. Empty
    for an inference pass: everything is ``forward``."""
    tracing_asked: dict[str, int] = field(default_factory=dict)
    """Where code outside torch asked ``torch.jit.is_tracing()`` (``module:function`` of the
    caller -> calls), in a count made with ``as_traced``; empty otherwise."""
    outside_module_calls: int = 0
    """Calls of modules outside the model during the pass (``Recording.outside_calls``)."""

    @property
    def macs(self) -> int:
        return self.totals.macs

    @property
    def flops(self) -> int:
        return self.totals.flops

    @property
    def extra_flops(self) -> int:
        return self.totals.extra_flops

    def module_macs(self) -> dict[str, int]:
        """Per-module MACs (inclusive of children)."""
        return {k: v.macs for k, v in self.per_module.items()}

    def op_macs(self) -> dict[str, int]:
        return {k: v.macs for k, v in self.per_op.items()}


def param_counts(model: nn.Module) -> ParamCount:
    """Total / unique / trainable / shared parameter counts of ``model``."""
    return _params_and_devices(model)[0]


def _params_and_devices(model: nn.Module) -> tuple[ParamCount, set[str]]:
    """:func:`param_counts` and the device types of the parameters and
    buffers, in one walk of ``named_modules(remove_duplicate=False)`` (the
    walk ``named_parameters(remove_duplicate=False)`` makes)."""
    refs: dict[int, int] = {}
    sizes: dict[int, tuple[int, bool]] = {}
    devices: set[str] = set()
    todo = [model]
    while todo:  # named_modules(remove_duplicate=False) without building the names
        module = todo.pop()
        todo.extend(m for m in module._modules.values() if m is not None)
        for p in module._parameters.values():
            if p is None:
                continue
            key = id(p)
            n = refs.get(key)
            if n is None:
                refs[key] = 1
                sizes[key] = (p.numel(), p.requires_grad)
                devices.add(p.device.type)
            else:
                refs[key] = n + 1
        for b in module._buffers.values():
            if b is not None:
                devices.add(b.device.type)
    total = sum(sizes[k][0] * n for k, n in refs.items())
    unique = sum(n for n, _ in sizes.values())
    trainable = sum(n for n, g in sizes.values() if g)
    shared = [k for k, n in refs.items() if n > 1]
    shared_elements = sum(sizes[k][0] * (refs[k] - 1) for k in shared)
    return ParamCount(total, unique, trainable, len(shared), shared_elements), devices


def _summaries(events: tuple[OpEvent, ...], calls: tuple[ModuleCall, ...], rs: Ruleset, batch_size: int | None,
               phases: bool = False) -> tuple[Any, dict[str, int], RulesetTotals]:
    """The summary of ``events`` (split by phase with ``phases``), calls per module path and
    ``rs``'s view, from one pricing pass (:func:`~flopaudit.reference.pricing.price`)."""
    module_calls: dict[str, int] = {}
    for c in calls:
        module_calls[c.path] = module_calls.get(c.path, 0) + 1
    pricing = price(events, calls, rs, batch_size, summary=True, view=True, phases=phases)
    assert pricing.summary is not None and pricing.view is not None
    return pricing.summary, module_calls, pricing.view


def count(
    model: nn.Module,
    inputs: Any,
    kwargs: Mapping[str, Any] | None = None,
    *,
    ruleset: str | Ruleset = "canonical",
    device: Literal["meta"] | None = None,
    no_grad: bool = True,
    patch: Sequence[str] = (),
    module_hooks: bool | str | None = None,
    cache: bool | None = None,
    pass_: str | Pass = "inference",
    loss: str | Callable[[Any], Any] | None = None,
    optimizer: str | Callable[[Any], Any] | None = None,
    as_traced: bool | None = None,
    unpatched_for_overrides: bool = False,
) -> ReferenceCount:
    """Count one forward pass ``model(*inputs, **kwargs)`` with the reference counter,
    or with ``pass_="train"`` one training step.

    ``inputs`` is a tensor, a tuple/list of positional args or a
    :class:`~flopaudit.inputs.ModelInputs`. The model is used as given (no
    copy): global module hooks are added for the call and removed afterwards,
    buffer and parameter values the pass writes (BatchNorm running statistics,
    a queue), data it gives a parameter (``param.data = ...``, a momentum
    update) and entries it puts in a module's parameter or buffer table are
    put back, nothing else is changed; what the model's code memoises for the
    process (``functools.lru_cache``) is emptied first, so the pass runs as a
    fresh process's first does (:mod:`flopaudit.memos`). The inputs are used as given too: a
    model that changes them (appends to a key/value cache it is passed) changes
    them here, so a second count of the same inputs counts what the first left;
    pass ``inputs.fresh()`` to count each time from the inputs as built (every
    count of an audit does, :meth:`~flopaudit.inputs.ModelInputs.fresh`). ``no_grad`` (default) runs the
    pass under ``torch.no_grad()``
    (inference; eval-mode fast paths such as fused attention are then taken
    and have their own formulas).

    ``device="meta"`` requires a model already on the meta device (built
    under ``with torch.device("meta"):``) and moves tensor inputs to meta;
    no weights are allocated. A pass that fails on meta is recorded again with
    the way round its failure, where there is one, each said in the notes
    (:mod:`flopaudit.reference.meta_workarounds`; not where ``as_traced`` is
    given): a model that reads values only outside a trace (transformers'
    attention-mask checks) is counted in its traced branch, and float32
    grouped products (mixture-of-experts layers), which torch's meta kernel
    refuses, get bfloat16 stand-ins, and a zero-dimensional CPU tensor given
    beside meta tensors is moved to meta. A model under ``FakeTensorMode`` with fake
    inputs works with ``device=None``. To build on meta, see :func:`count_meta`.

    A ruleset with ``patched_functions`` records the pass with those Python
    callables wrapped (their calls become zero-cost ``py:`` events it prices);
    ``patch`` wraps more (one recording can then serve several rulesets,
    each seeing only the calls of its own functions). ``module_hooks``
    (default: the ruleset's) attaches a no-op hook to every module (or with
    ``"children"`` to the root's direct children) for the pass, as hook-based
    counters do.

    ``cache=False`` prices every operator call afresh instead of through the
    process's pricing memo, and reads each operator's facts afresh (None, the default: on unless the environment
    variable ``FLOPAUDIT_REFERENCE_CACHE=0``; see
    :mod:`flopaudit.reference.caching`). The result is the same either way.

    ``pass_="train"`` counts one training step instead (:mod:`flopaudit.training`):
    the forward with autograd on (``no_grad`` is ignored) in the mode the
    model is in, the loss (``loss="module:function"`` or a function of the
    output, default the sum of the floating outputs), its backward, and with
    ``optimizer`` one optimizer step (a name of :data:`~flopaudit.passes.OPTIMIZERS`, or the user's
    own: see :func:`flopaudit.training.make_optimizer`); a
    :class:`~flopaudit.passes.Pass` may be given instead. The result's ``phases`` split the cost by phase;
    every backward operator is attributed to the module whose forward made
    the autograd node running it, every optimizer operator to the module
    holding its parameter. Parameters and their ``.grad`` are left as they
    were (the optimizer steps stand-ins).

    ``as_traced`` (for rulesets of counters that JIT-trace the model): note where the
    model's code asks ``torch.jit.is_tracing()`` (the result's ``tracing_asked``) and
    answer it so; True records the branch a traced model takes (see
    :func:`flopaudit.reference.engine.record`). ``unpatched_for_overrides``: a patched call
    that a tensor subclass's ``__torch_function__`` takes over runs with the callable put
    back (the path under a counter that patches nothing; see ``record``).
    """
    step = pass_of(pass_, loss, optimizer)
    ins = ModelInputs.coerce(inputs, kwargs)
    rs = get_ruleset(ruleset)
    if device not in (None, "meta"):
        raise ValueError(f"device must be None or 'meta', not {device!r}")
    if device == "meta":
        devices = _params_and_devices(model)[1]
        if devices - {"meta"}:
            raise ValueError(
                f"count(device='meta') needs a model on the meta device, found {sorted(devices)}; build it under "
                "`with torch.device('meta'):` or use count_meta(build_fn, inputs_fn)"
            )
        ins = ins.to("meta")
    grad_ctx = torch.no_grad() if no_grad and not step.train else contextlib.nullcontext()

    def recorded(ways: MetaWorkarounds) -> Recording:
        with grad_ctx, ways.applied(model, tracing=False):
            return record(model, ins.args, ins.kwargs, patch=tuple(dict.fromkeys((*rs.patched_functions, *patch))),
                          module_hooks=rs.module_hooks if module_hooks is None else module_hooks, cache=cache,
                          step=step if step.train else None, as_traced=True if ways.traced else as_traced,
                          unpatched_for_overrides=unpatched_for_overrides)

    ways = MetaWorkarounds()
    try:
        rec = recorded(ways)
    except Exception as exc:
        if as_traced is not None or not holds_meta(model, ins):
            raise
        # On meta: the ways round a failure there (meta_workarounds), tried in turn.
        rec, ways = run_on_meta(recorded, exc, lambda r: r.tracing_asked)
    events = tuple(rec.events)
    calls = tuple(rec.calls)
    summary, module_calls, ruleset_totals = _summaries(events, calls, rs, ins.batch_size, phases=step.train)
    params, devices = _params_and_devices(model)
    return ReferenceCount(
        events=events,
        module_call_records=calls,
        totals=summary.total,
        per_module=summary.per_module,
        per_op=summary.per_op,
        per_category=summary.per_category,
        unsupported=summary.unsupported,
        module_calls=module_calls,
        params=params,
        ruleset=ruleset_totals,
        batch_size=ins.batch_size,
        device=",".join(sorted(devices)) or (device or ""),
        notes=(*rec.notes, *ways.notes()),
        traced_custom_ops=dict(rec.traced),
        pass_=step,
        phases={p: summary.phases[p] for p in PHASES if p in summary.phases},
        tracing_asked=dict(rec.tracing_asked),
        outside_module_calls=rec.outside_calls,
    )


def apply_ruleset(source: ReferenceCount | Sequence[OpEvent], ruleset: str | Ruleset,
                  batch_size: int | None = None) -> RulesetTotals:
    """Price a recorded count (or bare events) under another ruleset.

    Rulesets with module rules need the module-call records, so pass the
    :class:`ReferenceCount` for those.
    """
    rs = get_ruleset(ruleset)
    if isinstance(source, ReferenceCount):
        return apply(source.events, source.module_call_records, rs, batch_size or source.batch_size)
    if rs.module_rules:
        raise ValueError(f"ruleset {rs.name!r} has module rules: pass the ReferenceCount, not bare events")
    return apply(tuple(source), (), rs, batch_size)


class MetaBuildError(RuntimeError):
    """The model could not be built or run on the meta device; ``failures``: what each way of
    building it raised, in the order tried (empty where a forward pass failed instead)."""

    def __init__(self, message: str, failures: tuple[BaseException, ...] = ()) -> None:
        super().__init__(message)
        self.failures = failures


_T = TypeVar("_T")


def build_on_meta(build_fn: Callable[[], _T]) -> tuple[_T, BaseException | None]:
    """``build_fn()`` with every parameter and buffer it makes on the meta device, and what the
    first way raised where the second was needed (``None`` otherwise).

    First under ``with torch.device("meta")``, where a parameter or buffer made on the CPU all the
    same (by the legacy constructor ``torch.Tensor([...])``, which the block does not reach:
    x-transformers' ALiBi slopes) is put on meta as it is registered, as ``model.to(device)`` would
    move it; a constructor that needs tensor values (torchvision's
    RegNet rounds widths with ``.tolist()``) is built again under :func:`empty_weights` alone (each
    parameter and buffer lands on meta as it is registered; other tensors are made where the code
    makes them). Both skip ``torch.nn.init`` (:func:`skip_init`): the weights' values are never used.
    Neither building raises :class:`MetaBuildError` holding both exceptions.
    """
    try:
        with torch.device("meta"), empty_weights(), skip_init():
            return build_fn(), None
    except Exception as exc:  # noqa: BLE001 - try the next way
        under_device = exc
    try:
        return build_with_empty_weights(build_fn), under_device
    except Exception as exc:  # noqa: BLE001 - both ways failed: the error holds both
        with_empty_weights = exc
    raise MetaBuildError(f"build under torch.device('meta') failed: {_said(under_device)}; build with "
                         f"empty_weights() failed: {_said(with_empty_weights)}",
                         (under_device, with_empty_weights)) from with_empty_weights


def build_with_empty_weights(build_fn: Callable[[], _T]) -> _T:
    """``build_fn()`` the second of :func:`build_on_meta`'s ways: under :func:`empty_weights` and
    :func:`skip_init` alone. Also the way to build again a model built under ``torch.device("meta")``
    whose forward then fails: a constructor may skip there work its forward needs (torchtune's
    Llama 3 rotary embedding builds its cache only from frequencies that are not meta tensors, and
    its forward refuses to run without it); built this way, the tensors it computes from are real
    until they are registered."""
    with empty_weights(), skip_init():
        return build_fn()


def build_on_cpu_then_meta(build_fn: Callable[[], _T]) -> _T:
    """``build_fn()`` on the CPU under :func:`skip_init` alone, its model (what it returns, or the
    first item of the tuple it returns) then moved to the meta device with ``Module.to("meta")``.

    The way to build for meta a model that neither of :func:`build_on_meta`'s ways builds: a
    constructor that runs the model on a CPU tensor it makes and reads what it measured (ultralytics'
    detection models measure their strides so), or that computes on the buffers it has registered
    (normflows' MADE checks its masks' degrees, zuko's merges its masks' rows with ``torch.unique``).
    # NB: the weights are made on the CPU, as ``torch.empty`` makes them, which takes no memory until
    # written, and are not initialised; what the constructor itself writes (``torch.randn`` weights,
    # buffers it fills) takes memory until the move. Tensors it keeps as plain attributes stay on the CPU.
    Raises TypeError where ``build_fn`` returns no module."""
    with skip_init():
        built = build_fn()
    model = built if isinstance(built, nn.Module) else (
        built[0] if isinstance(built, tuple) and built and isinstance(built[0], nn.Module) else None)
    if model is None:
        raise TypeError(f"the model factory returned {type(built).__name__}, not an nn.Module")
    model.to("meta")
    return built


ON_CPU_THEN_META = ("built on the CPU instead, its weights made but not initialised, then moved to the meta "
                    "device: what its constructor wrote took memory until the move")
"""Said of a model built by :func:`build_on_cpu_then_meta`."""


def _said(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@contextlib.contextmanager
def empty_weights() -> Iterator[None]:
    """Build modules normally but put every parameter and buffer on meta, and keep them there
    when the constructor moves a module to a device (:data:`_MOVES`).

    For constructors that compute with real tensors (e.g. torchvision's
    RegNet derives its widths with ``torch.round(...).tolist()``), which fail
    under ``torch.device("meta")``. Each parameter is allocated on CPU for an
    instant and moved to meta as it is registered; initialisers then run on
    meta for free. ``nn.Module.register_parameter``/``register_buffer`` are
    patched for the duration of the block only.
    """
    original_param = nn.Module.register_parameter
    original_buffer = nn.Module.register_buffer

    def register_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original_param(self, name, param)
        if param is not None and param.device.type != "meta":
            kind = type(param)
            attrs = dict(param.__dict__)
            meta = kind(param.detach().to("meta"), requires_grad=param.requires_grad)
            meta.__dict__.update(attrs)
            self._parameters[name] = meta

    def register_buffer(self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        if tensor is not None and tensor.device.type != "meta":
            tensor = tensor.to("meta")
        original_buffer(self, name, tensor, persistent=persistent)

    original_moves = {name: getattr(nn.Module, name) for name in _MOVES}

    def to(self: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        device, dtype, _, memory_format = torch._C._nn._parse_to(*args, **kwargs)
        if device is None or device.type == "meta":
            return original_moves["to"](self, *args, **kwargs)
        cast = {k: v for k, v in (("dtype", dtype), ("memory_format", memory_format)) if v is not None}
        return original_moves["to"](self, "meta", **cast)

    def stays(self: nn.Module, *args: Any, **kwargs: Any) -> nn.Module:
        return self

    nn.Module.register_parameter = register_parameter  # type: ignore[method-assign]
    nn.Module.register_buffer = register_buffer  # type: ignore[method-assign]
    for name in _MOVES:
        setattr(nn.Module, name, to if name == "to" else stays)
    try:
        yield
    finally:
        nn.Module.register_parameter = original_param  # type: ignore[method-assign]
        nn.Module.register_buffer = original_buffer  # type: ignore[method-assign]
        for name, method in original_moves.items():
            setattr(nn.Module, name, method)


_MOVES = ("to", "cpu", "cuda")
"""The ``nn.Module`` methods that move a module to a device, which :func:`empty_weights` makes
keep it on meta: a constructor that moves what it built (``self.to(device)``, stable-baselines3's
``MlpExtractor(...).to(self.device)``) would copy meta tensors out, which have no values. A
``dtype`` given to ``to`` still casts."""


#: The in-place initialisers of ``torch.nn.init`` that :func:`skip_init` turns off.
_INITIALISERS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_",
)


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Make ``torch.nn.init``'s in-place initialisers return their tensor untouched.

    For building a model whose weights will live on the meta device (or be
    thrown away): meta tensors hold no values, so initialising them is work
    with no result (about three quarters of building resnet50 on meta).
    Layers look the initialisers up on ``torch.nn.init`` when they call
    them, so replacing the module's attributes for the block reaches them;
    they are put back on exit.
    """
    from torch.nn import init

    saved = {name: getattr(init, name) for name in _INITIALISERS if hasattr(init, name)}

    def untouched(tensor: Any, *args: Any, **kwargs: Any) -> Any:
        return tensor

    try:
        for name in saved:
            setattr(init, name, untouched)
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def count_meta(
    build_fn: Callable[[], nn.Module],
    inputs_fn: Callable[[], Any],
    *,
    ruleset: str | Ruleset = "canonical",
    fallback: Literal["cpu", "raise"] = "cpu",
    no_grad: bool = True,
    pass_: str | Pass = "inference",
    loss: str | Callable[[Any], Any] | None = None,
    optimizer: str | Callable[[Any], Any] | None = None,
) -> ReferenceCount:
    """Build the model on the meta device and count it without allocating weights
    (``pass_``, ``loss``, ``optimizer``: as :func:`count`; a training step on meta
    allocates no gradient or optimizer state either).

    Strategies, in order, each reported in the result's ``notes`` when used
    after a failure:

    1. ``build_fn()`` and ``inputs_fn()`` under ``with torch.device("meta")``
       (no tensor is ever allocated; CPU tensors from ``inputs_fn`` are moved
       to meta);
    2. if building fails there, or the forward pass of the model built there
       fails, :func:`empty_weights` (the constructor runs on CPU, parameters
       and buffers land on meta one by one: a constructor that skips work on
       meta tensors, see :func:`build_with_empty_weights`, does it);
       if building fails that way too, on the CPU, then moved to meta
       (:func:`build_on_cpu_then_meta`);

    each builds under :func:`skip_init` (the weights' values are never used);
    3. if that fails too, or the forward pass fails on meta (a forward that
       needs tensor values in its traced branch too: see :func:`count`),
       ``fallback="cpu"`` builds and counts on CPU,
       ``fallback="raise"`` raises :class:`MetaBuildError` naming each failure.
    """
    failures: list[str] = []  # what each way met, in the order tried
    model: nn.Module | None = None
    built = ""  # how the model was built, where not the first way
    try:
        model, first = build_on_meta(build_fn)
        if first is not None:
            failures.append(f"build under torch.device('meta') failed: {_said(first)}")
            built = "built with empty_weights() instead"
    except MetaBuildError as exc:
        failures.append(str(exc))  # (each way's failure, as build_on_meta words them)
        try:
            model = build_on_cpu_then_meta(build_fn)
            built = ON_CPU_THEN_META
        except Exception as on_cpu:  # noqa: BLE001
            failures.append(f"build on the CPU failed: {_said(on_cpu)}")

    def counted(model: nn.Module) -> ReferenceCount:
        with torch.device("meta"):
            inputs = inputs_fn()
        return count(model, inputs, ruleset=ruleset, device="meta", no_grad=no_grad, pass_=pass_, loss=loss,
                     optimizer=optimizer)

    if model is not None:
        try:
            return _with_notes(counted(model), (f"{failures[-1]}; {built}",) if built else ())
        except Exception as exc:  # noqa: BLE001
            failures.append(f"forward on meta failed: {type(exc).__name__}: {exc}")
        if not built:  # built under torch.device("meta"): its constructor may have skipped work there
            try:
                result = counted(build_with_empty_weights(build_fn))
                return _with_notes(result, (failures[-1] + " built under torch.device('meta'); built with "
                                            "empty_weights() instead",))
            except Exception as exc:  # noqa: BLE001
                failures.append(f"built with empty_weights(), {type(exc).__name__}: {exc}")
    if fallback == "raise":
        raise MetaBuildError("; ".join(failures))
    result = count(build_fn(), inputs_fn(), ruleset=ruleset, no_grad=no_grad, pass_=pass_, loss=loss,
                   optimizer=optimizer)
    return _with_notes(result, tuple(failures) + ("counted on CPU instead (fallback='cpu')",))


def _with_notes(result: ReferenceCount, notes: tuple[str, ...]) -> ReferenceCount:
    import dataclasses

    return dataclasses.replace(result, notes=result.notes + notes)


__all__ = [
    "MetaBuildError",
    "build_on_cpu_then_meta",
    "build_on_meta",
    "build_with_empty_weights",
    "PhaseSummary",
    "empty_weights",
    "ParamCount",
    "ReferenceCount",
    "Totals",
    "apply_ruleset",
    "count",
    "count_meta",
    "param_counts",
    "skip_init",
]
