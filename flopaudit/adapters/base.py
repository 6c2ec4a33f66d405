"""The one interface every counting backend is wrapped behind."""

from __future__ import annotations

import copy
import importlib
import re
import sys
import time
import types
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from flopaudit.adapters._failures import (
    frames_of,
    grad_in_backward_hint,
    keyword_only_call_hint,
    packed_sequence_hint,
    reentrant_checkpoint_hint,
    traced_argument_types_hint,
    traced_constant_hint,
    traced_function_hint,
    traced_functional_call_hint,
    traced_grad_outputs_hint,
    traced_size_number_hint,
    traced_state_hint,
    transform_write_hint,
    untracked_gradient_hint,
)
from flopaudit.adapters.descriptor import Backend
from flopaudit.errors import NotApplicable, keyword_inputs_hint
from flopaudit.records import (
    Breakdown,
    CountResult,
    Granularity,
    PhaseCount,
    RulesetPrediction,
    Status,
    Unit,
    breakdown,
)

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs
    from flopaudit.passes import Pass


@dataclass
class RawCount:
    """What an adapter's ``_count`` extracts from its backend.

    ``raw_total`` is exactly what the backend reported. ``macs``,
    ``per_module`` and ``per_op`` must already be normalised to MACs for the
    whole batch (the adapter knows its backend's convention).
    """

    raw_total: int | float | None
    macs: int | None
    params: int | None = None
    per_module: Mapping[str, int] = field(default_factory=dict)
    per_op: Mapping[str, int] = field(default_factory=dict)
    unsupported: Mapping[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    extra: Mapping[str, int] = field(default_factory=dict)
    predictions: tuple[RulesetPrediction, ...] = ()
    phases: tuple[PhaseCount, ...] = ()
    notes: list[str] = field(default_factory=list)
    """What the adapter says of its own count (:attr:`~flopaudit.records.CountResult.notes`); each is
    a warning too."""


class Adapter(ABC):
    """A counting backend behind one interface.

    Subclasses set :attr:`backend` to their module's descriptor and
    implement :meth:`_count`; name, unit, distribution and the rest are read
    from the descriptor. The public :meth:`count` runs it on a deep copy of
    the model (see :attr:`copies_model`), silences the
    backend, records what it printed and warned, notes any change it made to
    the copy (``side_effects``) and turns an exception into a result with
    status ``error`` (or ``not applicable`` for :class:`NotApplicable`).
    """

    backend: ClassVar[Backend]
    """This backend's descriptor (the ``BACKEND`` constant of the adapter's module)."""
    copies_model: ClassVar[bool] = True
    """Count a deep copy (the backend may change the model it is given). Only
    a backend whose :meth:`_count` leaves the model exactly as it was (the
    reference counter: global hooks removed, buffers put back) sets this to
    False and is counted on the model itself; the before/after fingerprint
    is taken all the same and any change is reported. A model with lazy
    (uninitialised) parameters is always copied: its first forward would
    materialise them."""

    @property
    def name(self) -> str:
        """Backend id used on the command line, e.g. ``"fvcore"``."""
        return self.backend.name

    @property
    def distribution(self) -> str:
        """The pip distribution whose version is recorded (``"flopaudit"`` for a built-in counter)."""
        return self.backend.distribution or "flopaudit"

    @property
    def module(self) -> str:
        """The import name that must be importable for the backend to be available."""
        return self.backend.module

    @property
    def unit(self) -> Unit:
        """What the backend's raw number counts, whatever the backend calls it."""
        return self.backend.unit

    @property
    def granularity(self) -> Granularity:
        return self.backend.granularity

    @property
    def description(self) -> str:
        return self.backend.description

    def options(self) -> dict[str, Any]:
        """Every result-changing option this adapter passes to its backend."""
        return {}

    def train_options(self) -> dict[str, Any]:
        """The options of a training-step count (default: :meth:`options`); the pass's own
        (``pass``, ``loss``, ``optimizer``) are added to the result."""
        return self.options()

    def version(self) -> str:
        """Installed version of the backend's distribution ("" if missing)."""
        return self.backend.version()

    def available(self) -> bool:
        return self.backend.available()

    def preload(self) -> None:
        """Import the backend's package in this process, silently (once; later calls are free).

        An isolated count runs in a child forked from this process: what is
        imported here (Dynamo too, see :mod:`flopaudit.eager`) is imported once
        per worker instead of once per count
        (calflops and ptflops import transformers, seconds every time). A
        package that fails to import is left to fail in the count, with its
        message there.
        """
        from flopaudit.eager import import_dynamo

        import_dynamo()  # every count runs under compiled_code_eager, which needs it
        if self.backend.module in sys.modules or not self.available():
            return
        from flopaudit.isolation import quiet

        with quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                importlib.import_module(self.backend.module)
            except Exception:  # noqa: BLE001 - the count reports it
                pass

    @abstractmethod
    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        """Count ``model(*inputs.args, **inputs.kwargs)``; may change ``model``."""

    def _count_train(self, model: nn.Module, inputs: ModelInputs, step: Pass) -> RawCount:
        """Count one training step of ``model`` (:func:`flopaudit.training.train_step`
        runs it); may change ``model``. Backends whose descriptor lists ``"train"``
        in :attr:`~flopaudit.adapters.Backend.passes` implement it: ``macs`` the
        whole step's, ``phases`` split by phase where the backend can tell."""
        raise NotImplementedError(f"{self.name} declares no training-step count")

    def count(
        self,
        model: nn.Module,
        inputs: Any,
        kwargs: Mapping[str, Any] | None = None,
        *,
        model_name: str = "",
        pass_: Pass | None = None,
    ) -> CountResult:
        """Count one model on one set of inputs; never raises for backend failures.

        ``pass_`` (default: inference) says what is counted: one forward pass
        (:meth:`_count`) or one training step (:meth:`_count_train`); a backend
        that does not count that pass gives ``not applicable``. The backend
        works on a deep copy (unless it declares it leaves the model alone, see
        :attr:`copies_model`), so ``model`` is left as it was, and on a copy of the
        inputs (:meth:`~flopaudit.inputs.ModelInputs.fresh`), so every count starts
        from the same inputs; what the model's code memoises for the process is emptied
        first (:mod:`flopaudit.memos`), so every count runs the model as a fresh process's
        first forward pass does.
        """
        import torch

        from flopaudit.draws import same_draws
        from flopaudit.eager import compiled_code_eager
        from flopaudit.inputs import ModelInputs
        from flopaudit.isolation import fingerprint, fingerprint_diff, quiet
        from flopaudit.memos import empty_memos
        from flopaudit.passes import INFERENCE_PASS

        step = pass_ or INFERENCE_PASS
        inputs = ModelInputs.coerce(inputs, kwargs)
        base = dict(
            model=model_name,
            backend=self.name,
            backend_version=self.version(),
            torch_version=str(torch.__version__),  # a plain str: unpickling a TorchVersion imports torch
            unit=self.unit,
            batch_size=inputs.batch_size,
            options=tuple(sorted((k, repr(v)) for k, v in
                                 {**(self.train_options() if step.train else self.options()), **step.options()}.items())),
        )
        if not self.backend.counts(step.kind):
            return CountResult(status=Status.NOT_APPLICABLE, error=self.backend.pass_reason(step.kind), **base)
        if not self.available():
            return CountResult(status=Status.NOT_APPLICABLE, error=self.backend.missing_reason(), **base)
        start = time.perf_counter()
        side_effects: list[str] = []
        caught: list[warnings.WarningMessage] = []
        work = model  # (the copy, once made: a failure names the copy's modules)
        try:
            if self.backend.inputs_check is not None:  # inputs it cannot be given at all: before any copy
                self.backend.inputs_check(inputs)
            work = copy_model(model) if self.copies_model or has_lazy_tensors(model) else model
            empty_memos(work)  # as a fresh process's first forward runs it, whatever counted before (flopaudit.memos)
            before = fingerprint(work, exact=False)
            with quiet() as printed, warnings.catch_warnings(record=True) as caught, same_draws(model=work), \
                    compiled_code_eager():
                warnings.simplefilter("always")
                given = inputs.fresh()  # a model that changes its inputs changes this copy only
                raw = self._count_train(work, given, step) if step.train else self._count(work, given)
            side_effects = fingerprint_diff(before, fingerprint(work, exact=False))
        except NotApplicable as exc:
            return CountResult(
                status=Status.NOT_APPLICABLE, error=str(exc), elapsed_s=time.perf_counter() - start, **base
            )
        except Exception as exc:  # noqa: BLE001 - a failing backend is data
            return CountResult(
                status=Status.ERROR,
                error=error_text(exc, keyword_inputs_hint(exc, inputs.args, inputs.kwargs)
                                 + packed_sequence_hint(exc, work) + traced_state_hint(exc, work)
                                 + keyword_only_call_hint(exc, work) + traced_function_hint(exc, work)
                                 + untracked_gradient_hint(exc, work) + traced_constant_hint(exc, work)
                                 + traced_grad_outputs_hint(exc, work) + traced_size_number_hint(exc, work)
                                 + traced_argument_types_hint(exc, work) + traced_functional_call_hint(exc, work)
                                 + transform_write_hint(exc, work, self.backend.module)
                                 + grad_in_backward_hint(exc, work)
                                 + reentrant_checkpoint_hint(exc)),
                elapsed_s=time.perf_counter() - start,
                **base,
            )
        elapsed = time.perf_counter() - start
        messages = [*raw.notes, *raw.warnings]
        messages += [f"{w.category.__name__}: {w.message}" for w in caught]
        messages += [line.strip() for line in printed.getvalue().splitlines() if line.strip()]
        return CountResult(
            status=Status.OK,
            raw_total=raw.raw_total,
            macs=None if raw.macs is None else int(raw.macs),
            params=raw.params,
            per_module=breakdown(raw.per_module),
            per_op=breakdown(raw.per_op),
            unsupported=breakdown(raw.unsupported),
            warnings=_dedupe(messages),
            notes=tuple(_dedupe(list(raw.notes))),
            side_effects=tuple(side_effects),
            elapsed_s=elapsed,
            extra=breakdown(raw.extra),
            predictions=raw.predictions,
            phases=raw.phases,
            **base,
        )


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
"""An object's address in a repr (``<... object at 0x5569...>``): different on every run."""
_TERMINAL_STYLE = re.compile(r"\x1b\[[0-9;]*m")
"""A terminal's colour or bold escape (Keras writes the error it wraps in bold): not text, and not for a report."""


#: The longest exception message a failed count keeps (an error that prints a whole tensor runs to megabytes).
ERROR_CHARS = 1000


def error_text(exc: BaseException, hints: str = "") -> str:
    """A failed count's message: ``Type: message (raised in ...)`` and ``hints``
    (what the adapter can add about it), object addresses left out so that the
    same failure reads the same in every run, and terminal escapes left out, the message cut to its first
    :data:`ERROR_CHARS` characters; where it has several lines, where it was
    raised and the hints follow the first (the line a table shows)."""
    text = _TERMINAL_STYLE.sub("", _ADDRESS.sub("", f"{type(exc).__name__}: {exc}".strip()))
    if len(text) > ERROR_CHARS:
        text = f"{text[:ERROR_CHARS].rstrip()} ... ({len(text) - ERROR_CHARS} more characters)"
    first, newline, rest = text.partition("\n")
    return first.rstrip() + raised_in(exc) + hints + newline + rest


_RUNS_AN_OPERATOR = {("flopaudit.reference.engine", "_run_on_meta"), ("flopaudit.reference.operators", "run")}
"""The reference recorder's helpers that run an operator for its dispatch mode: pass-throughs too."""


def raised_in(exc: BaseException) -> str:
    """`` (raised in <module>, line <n>)``: the innermost frame of ``exc``'s
    traceback that is code of the backend, of flopaudit or of the model, so
    that their failures read apart; '' if there is none. Python's own frames,
    numpy's (an array that numpy refuses is its caller's failure) and torch's
    machinery are skipped; torch's layers (``torch.nn.modules.*``
    but the ``Module`` base class, ``torch.nn.functional``) are model code; a
    mode's ``__torch_dispatch__``/``__torch_function__`` (and the recorder's helpers
    that run the operator for it) passes an operator
    through for whoever called it, so a failing operator is not the mode's;
    the wrappers that bind a model's inputs (``flopaudit.adapters._binding``)
    pass the call through to the model for the backend, so a call they make
    fails in whoever made them call it."""
    from flopaudit.errors import BackendFailure, UserError

    # Told in words (by the adapter; a user error by the code that saw it): where it came from, if known.
    if isinstance(exc, (BackendFailure, UserError)):
        return raised_in(exc.__cause__) if exc.__cause__ is not None else ""
    found = ""
    for frame, lineno in frames_of(exc):
        name = str(frame.f_globals.get("__name__", ""))
        top = name.split(".")[0]
        layer = name.startswith(("torch.nn.modules.", "torch.nn.functional")) and name != "torch.nn.modules.module"
        through = (frame.f_code.co_name in ("__torch_dispatch__", "__torch_function__")
                   or (name, frame.f_code.co_name) in _RUNS_AN_OPERATOR or name == "flopaudit.adapters._binding")
        if top and top not in sys.stdlib_module_names and top != "numpy" and (top != "torch" or layer) and not through:
            found = f" (raised in {name}, line {lineno})"
    return found


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)``, also for modules holding non-leaf tensors as
    plain attributes (``torch.nn.utils.prune`` and ``weight_norm`` recompute
    ``weight`` from ``weight_orig``/``weight_g`` in a forward pre-hook, and
    tensors that autograd produced refuse ``deepcopy``), or a buffer written
    with autograd on (``self.cache.copy_(y)``), also inside a list, tuple or
    dict attribute (RAFT's correlation block keeps its last pyramid as
    ``self.corr_pyramid = [...]``) or an attribute of another object
    (stable-baselines3's policies keep their last action distribution,
    ``self.action_dist.distribution``): such a tensor is copied detached; the hook
    recomputes the attribute on the next forward. A ``torch.jit.script``
    function held as an attribute is shared, not copied, and so is a module
    attribute whose own ``__deepcopy__`` gives None (gpytorch's prediction
    strategy, the cache an exact GP builds on its first call in eval mode):
    the copy runs as the model does, not as a first call. So is an attribute that
    cannot be copied at all (a ``threading.Lock``, an open file, a Python module
    object: ``TypeError: cannot pickle ...``), and a parameter of a tensor subclass
    that refuses ``deepcopy`` (optimum-quanto's quantized weights). Attributes a library
    set on a parameter (muP's ``infshape``, which its readout layer reads in
    ``forward``; opacus's per-sample gradient counters) are copied with it:
    torch's ``Parameter.__deepcopy__`` makes a new parameter from the data
    alone. The copy is in the modes the model is in (:func:`modes_kept`). A model with a
    module whose class refuses ``deepcopy`` (``fully_shard``'s ``FSDPModule``, which raises
    ``AssertionError``) cannot be copied: :class:`~flopaudit.errors.NotApplicable`, naming the
    module; so is one holding an object that refuses ``deepcopy`` and holds the model's own
    parameters or modules (``FullyShardedDataParallel``'s flat-parameter handle): shared with a
    copy, it would let the counter change the model through it."""
    from flopaudit.inputs import note_uncopyable

    def prepared(shared: Sequence[Any]) -> dict[int, Any]:
        memo: dict[int, Any] = {id(value): value for value in shared}
        for module in model.modules():
            for value in (*vars(module).values(), *module._buffers.values()):
                note_uncopyable(value, memo, keep_grad=False, objects=True)
        return memo

    memo = prepared(())
    try:
        copied = copy.deepcopy(model, memo)
    except (TypeError, RuntimeError):  # "cannot pickle '_thread.lock' object": share what cannot be copied
        shared = _uncopyable_attributes(model)
        if not shared:
            raise
        tied = _holding_model_state(model, shared)
        if tied:
            raise NotApplicable(
                f"the model cannot be copied: {tied} refuses copy.deepcopy and holds the model's own "
                "parameters or modules, so a copy sharing it would let this counter change your model through "
                "it (as FullyShardedDataParallel's flat-parameter handle does); this counter is run on a copy: "
                "count the module before it is wrapped") from None
        memo = prepared(shared)  # (afresh: the failed copy left half-made objects in the memo)
        copied = copy.deepcopy(model, memo)
    except Exception as exc:
        refusing = _refusing_copies(model)
        if refusing is None:
            raise
        raise NotApplicable(
            f"the model refuses to be copied: {refusing} has a __deepcopy__ that raises "
            f"({type(exc).__name__}: {exc}), as torch.distributed's fully_shard (FSDP2) and replicate wrappers do; "
            "this counter is run on a copy, so that what it leaves in a model it counts (hooks, attributes, "
            "buffers) stays out of yours: count the module before it is wrapped") from None
    _parameter_attributes_copied(model, memo)
    _functions_rebound(copied, memo)
    return modes_kept(model, _dropped_attributes_shared(model, copied))


def _refusing_copies(model: nn.Module) -> str | None:
    """The first module of ``model`` whose class defines its own ``__deepcopy__`` (which
    ``nn.Module`` does not), as ``"<class> (<path>)"``; None if there is none."""
    from torch import nn

    for path, module in model.named_modules(remove_duplicate=True):
        for cls in type(module).__mro__:
            if cls is nn.Module:
                break
            if "__deepcopy__" in vars(cls):
                return f"{type(module).__name__} ({path or '<root>'})"
    return None


#: A module's hook tables (what ``register_forward_hook`` and its siblings fill).
_HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _functions_rebound(copied: nn.Module, memo: dict[int, Any]) -> None:
    """Point the hooks and instance-level functions of ``copied`` at the copy.

    ``copy.deepcopy`` shares a Python function as it is: a hook written as a closure or a
    lambda over the model (``base.register_forward_hook(lambda m, i, o: o + self.up(i[0]))``,
    a hook-based adapter) would run the *model's* modules from the copy, which a counter
    given the copy never sees (and a JIT trace refuses: the model's parameters are no graph
    inputs). Such a function is made again with each closure cell and default that holds
    something the copy copied (``memo``) holding its copy instead."""
    for module in copied.modules():
        attrs = vars(module)
        for table in _HOOK_TABLES:
            hooks = attrs.get(table)
            if hooks:
                for key, fn in list(hooks.items()):
                    hooks[key] = _rebound(fn, memo, {})
        for name, value in list(attrs.items()):
            if isinstance(value, types.FunctionType):
                attrs[name] = _rebound(value, memo, {})


def _rebound(fn: Any, memo: dict[int, Any], done: dict[int, Any]) -> Any:
    """``fn`` made again with the copies (``memo``) of what its closure cells and defaults
    hold (functions among them rebound the same way); ``fn`` itself where none is copied."""
    if not isinstance(fn, types.FunctionType):
        return fn
    if id(fn) in done:
        return done[id(fn)]
    done[id(fn)] = fn  # (a function reaching itself through its closure keeps itself)

    def twin(value: Any) -> Any:
        if isinstance(value, types.FunctionType):
            return _rebound(value, memo, done)
        found = memo.get(id(value))
        return value if found is None else found

    cells = fn.__closure__ or ()
    contents = []
    for cell in cells:
        try:
            contents.append(cell.cell_contents)
        except ValueError:  # an empty cell
            contents.append(_EMPTY)
    new_contents = [c if c is _EMPTY else twin(c) for c in contents]
    defaults = fn.__defaults__ or ()
    new_defaults = tuple(twin(d) for d in defaults)
    if all(a is b for a, b in zip(contents, new_contents)) and all(a is b for a, b in zip(defaults, new_defaults)):
        return fn
    closure = tuple(cell if new is _EMPTY else types.CellType(new) for cell, new in zip(cells, new_contents))
    made = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, new_defaults or None, closure or None)
    made.__kwdefaults__ = fn.__kwdefaults__
    made.__qualname__, made.__doc__, made.__module__ = fn.__qualname__, fn.__doc__, fn.__module__
    made.__dict__.update(fn.__dict__)
    done[id(fn)] = made
    return made


_EMPTY = object()


def _parameter_attributes_copied(model: nn.Module, memo: dict[int, Any]) -> None:
    """Give each parameter's copy (``memo[id(parameter)]``) the attributes set on the
    parameter that its copy lacks, deep-copied with ``memo`` (what they refer to in the
    model is its copy there), or shared where they cannot be copied."""
    for p in model.parameters():
        attrs = vars(p)
        twin = memo.get(id(p))
        if not attrs or twin is None or twin is p:
            continue
        missing = vars(twin)
        for name, value in attrs.items():
            if name not in missing:
                try:
                    missing[name] = copy.deepcopy(value, memo)
                except Exception:  # noqa: BLE001 - an object that refuses to be copied: the copy shares it
                    missing[name] = value


_MODULE_TABLES = frozenset({"_parameters", "_buffers", "_modules"})


def _uncopyable_attributes(model: nn.Module) -> list[Any]:
    """The attributes of the model's modules that ``copy.deepcopy`` refuses (a lock, an open
    file, a queue or a logger handler holding one, a Python module object), and its parameters
    and buffers of tensor subclasses that refuse it (optimum-quanto's quantized weights, wrapper
    subclasses whose ``clone`` gives another class), each once."""
    import torch
    from torch import nn

    plain = (torch.Tensor, nn.Parameter, getattr(nn, "Buffer", nn.Parameter))  # (nn.Buffer: torch 2.5 on)
    found: dict[int, Any] = {}
    for module in model.modules():
        tensors = [t for t in (*module._parameters.values(), *module._buffers.values())
                   if t is not None and type(t) not in plain]
        values = [v for k, v in vars(module).items() if k not in _MODULE_TABLES and not isinstance(v, nn.Module)]
        for value in (*tensors, *values):  # (modules are walked themselves; their tables hold modules and tensors)
            if value is None or id(value) in found:
                continue
            try:
                copy.deepcopy(value)
            except (TypeError, RuntimeError):
                found[id(value)] = value
    return list(found.values())


def _holding_model_state(model: nn.Module, shared: Sequence[Any]) -> str:
    """The first of ``shared`` (objects a copy would share, :func:`_uncopyable_attributes`)
    that is not a tensor and holds one of the model's modules, parameters or buffers (through
    its attributes, lists, tuples and dicts, three levels deep), as ``"<class> (<where>)"``;
    "" if none does. A lock or a Python module object holds none; FullyShardedDataParallel's
    ``FlatParamHandle`` holds the flat parameter and the modules it shards."""
    import torch

    own = {id(m) for m in model.modules()} | {id(t) for t in (*model.parameters(), *model.buffers())}

    def holds(value: Any, depth: int, seen: set[int]) -> bool:
        if id(value) in own:
            return True
        if depth == 0 or id(value) in seen or isinstance(value, (str, bytes, int, float, torch.Tensor)):
            return False
        seen.add(id(value))
        if isinstance(value, dict):
            items: Any = value.values()
        elif isinstance(value, (list, tuple, set, frozenset)):
            items = value
        else:
            items = getattr(value, "__dict__", {}).values()
        return any(holds(v, depth - 1, seen) for v in items)

    where = {id(v): f"{path or '<root>'}.{k}" for path, m in model.named_modules() for k, v in vars(m).items()}
    for value in shared:
        if not isinstance(value, torch.Tensor) and holds(value, 3, set()):
            return f"{type(value).__name__} ({where.get(id(value), 'held by a module')})"
    return ""


def _dropped_attributes_shared(model: nn.Module, copied: nn.Module) -> nn.Module:
    """``copied`` with each module attribute that its copy left None (an object whose
    ``__deepcopy__`` gives None) set to the model's own object."""
    twins = dict(copied.named_modules(remove_duplicate=False))
    for path, module in model.named_modules(remove_duplicate=False):
        twin = twins.get(path)
        if twin is None:
            continue
        attrs = vars(twin)
        for name, value in vars(module).items():
            if value is not None and name in attrs and attrs[name] is None:
                attrs[name] = value
    return copied


def modes_kept(model: nn.Module, copied: nn.Module) -> nn.Module:
    """``copied`` with each module in the train/eval mode of the module of ``model`` at
    its path, set by the module's own ``train()`` (a module may do more there). A
    copy can come back in another mode: torchvision's feature extractors
    (``create_feature_extractor``, a graph module holding a train and an eval
    graph) come back from ``copy.deepcopy`` in train mode, with the train graph,
    whatever mode the model was in. Modules are visited parents first, so a
    parent's ``train()`` does not undo a child's mode; a module that refuses
    ``train()`` (a graph from ``torch.export``) gets its flag set."""
    # (by class name: a graph module's class is made afresh for each instance, its copy's too)
    modes = {path: (type(m).__qualname__, m.training) for path, m in model.named_modules()}
    for path, m in copied.named_modules():
        kind, training = modes.get(path, (None, m.training))
        if kind == type(m).__qualname__ and m.training != training:
            try:
                m.train(training)
            except Exception:  # noqa: BLE001 - a module whose mode is fixed (torch.export)
                m.training = training
    return copied


_LOG_STAMP = re.compile(r"^\[[WIEF]\d{4} [\d:.]+ (?:\d+ )?[\w./-]+:\d+\] ")
"""The prefix of a line torch's C++ logging prints (``[W1205 12:00:25.764389823 util.cpp:845] ``):
a time stamp, which would make two counts of one model differ in their warnings."""


def _dedupe(messages: list[str], limit: int = 50) -> tuple[str, ...]:
    """The messages without torch's log stamps, each once (the first 50)."""
    seen: dict[str, None] = {}
    for m in messages:
        seen.setdefault(_LOG_STAMP.sub("", m)[:500], None)
    out = list(seen)
    if len(out) > limit:
        out = out[:limit] + [f"... {len(out) - limit} more messages"]
    return tuple(out)


def has_lazy_tensors(model: nn.Module) -> bool:
    """Does ``model`` hold an uninitialised (lazy) parameter or buffer? Its first
    forward materialises them and changes the modules' classes, so even a
    backend that leaves models alone counts a copy of such a model."""
    from flopaudit.isolation import is_uninitialized

    return any(is_uninitialized(t) for t in (*model.parameters(), *model.buffers()))


def count_params(model: nn.Module) -> int:
    """Unique parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


def has_own_work(module: nn.Module) -> bool:
    """A leaf, or a module holding parameters directly (its own forward does work)."""
    has_children = next(module.children(), None) is not None
    has_own_params = next(module.parameters(recurse=False), None) is not None
    return not has_children or has_own_params


def count_instances(modules: Iterable[nn.Module], flagged: Callable[[nn.Module], bool]) -> dict[str, int]:
    """Class name -> how many of ``modules`` the backend ``flagged`` (as having no rule) and that do
    work of their own (:func:`has_own_work`): containers whose children are counted are left out."""
    counts: dict[str, int] = {}
    for module in modules:
        if flagged(module) and has_own_work(module):
            key = type(module).__name__
            counts[key] = counts.get(key, 0) + 1
    return counts


__all__ = ["Adapter", "RawCount", "Breakdown", "copy_model", "count_instances", "count_params",
           "has_lazy_tensors", "has_own_work"]
