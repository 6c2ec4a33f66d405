"""What lets a model that fails on the meta device run there, and the notes saying what was done.

Meta tensors have shapes and no values, and some of torch's meta kernels
refuse what the CPU's take. These failures have a sound way round, tried in
turn by :func:`run_on_meta` and kept for every count of the model:

- **A value read outside a trace.** Some model code reads values only when it
  is not traced: transformers checks ``input_ids`` for padding tokens when no
  ``attention_mask`` is given, and checks the attention mask to see whether it
  can leave it out, unless ``torch.jit.is_tracing()``. The model is run with
  that question answered yes for its code, and counted in the branch it takes
  under a trace.
- **Grouped products in float32.** The meta kernel of ``aten._grouped_mm``
  (transformers' mixture-of-experts layers, ``F.grouped_mm``) accepts bfloat16
  only, where the CPU kernel takes float32 too. A float32 call on meta tensors
  is given bfloat16 stand-ins and its output cast back: the output's shape
  does not depend on the dtype, and meta tensors hold no values to lose.

- **A CPU scalar among meta tensors.** A zero-dimensional CPU tensor is a
  scalar every device's kernels take beside their own tensors (sew-d's
  ``x.masked_fill(mask, torch.tensor(min))``); some meta kernels refuse it.
  Such an argument of an operator that also takes meta tensors is moved to
  meta: it holds one number, which a meta kernel never reads.

- **Autocast asked for on meta.** ``torch.autocast("meta")`` raises
  ("unsupported scalarType", or with a dtype "unsupported autocast device_type"), where code that turns autocast off or on for
  its input's device (x-transformers' ``disable_autocast``:
  ``autocast(x.device.type, enabled=False)``) runs on every device. On meta
  it does nothing: operators run in the dtypes they are given, which changes
  no shape and so no count (bytes may differ where autocast was turned on).

- **A distribution checking its arguments.** ``torch.distributions`` checks
  a distribution's parameters (and a sample given to ``log_prob``) against
  their constraints by default, and asks whether every check passed: a
  value read (stable-baselines3's policies make a ``Normal`` in every
  forward). On meta the checks run as on the CPU, so their operators are
  counted, and are taken to have passed: meta tensors hold no values to
  fail them.

- **A cast to a meta tensor's type name.** ``x.type(y.type())``, an old way
  to cast to another tensor's type, raises on meta: ``Tensor.type()`` names
  a meta tensor's type ``torch.meta.FloatTensor``, which ``Tensor.type``
  refuses ("invalid type"). On meta such a name casts to its dtype
  (``Tensor.to``), as the CPU's ``torch.FloatTensor`` does there: the same
  operator, or none where the dtype is the tensor's own.

- **FlexAttention's device check.** ``flex_attention`` checks its inputs'
  device against the devices its kernels run on, and refuses meta ("FlexAttention
  is only supported on CUDA, CPU, HPU, or MPS devices", torchtitan's models). On
  meta the check lets meta tensors through, every other device as it is: the
  operator then runs its dense kernel there, which the reference prices on the
  CPU too (a torchtitan Llama 3 counts on meta the MACs, FLOPs and bytes it
  counts on the CPU).

- **The inverse STFT's window check.** ``torch.istft`` checks that its window's
  overlap-add never vanishes (the NOLA condition): it compares the envelope's
  smallest value with ``aten.equal``, which has no meta kernel (demucs' HDemucs and
  HTDemucs, BS-RoFormer). On meta ``torch.istft`` (and ``Tensor.istft``) runs with
  that comparison answered "the check passes", as it must on a device for the
  forward to run; every operator it runs is counted as on the CPU.
  # NB: ``istft`` bound by name before the count (``from torch import istft``) is not reached.

- **An assertion on values.** A model that checks its tensors' values with
  ``assert`` (demucs' ``pad1d``: ``assert (out[..., left:left + length] ==
  x0).all()``) asks for a value meta tensors do not have. The check cannot
  change what the pass computes: on meta such an assertion is taken to hold,
  as it must on a device for the forward to run. Its operators are counted as
  on the CPU; only the question ``assert`` itself asks (the condition's truth,
  read in the model's own code at an ``assert`` statement) is answered yes.
  A value read anywhere else (an ``if`` on values, ``.item()``) still fails.

A model that reads a value in every branch still fails, with the failure of
the last way tried. Used by :func:`flopaudit.reference.count` on meta and by
every count of a ``--meta`` audit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import dis
import functools
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

_VALUE_READS = ("meta tensors", "on meta", "data-dependent", "Cannot copy out of meta tensor", "item()")


def reads_values(exc: BaseException) -> bool:
    """Whether ``exc`` is a forward pass reading a tensor's value, which meta tensors do not have."""
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in _VALUE_READS)


_DEVICE_MIXES = ("is not on the expected device", "Expected all tensors to be on the same device",
                 "to be on same device")


def mixes_devices(exc: BaseException) -> bool:
    """Whether ``exc``, raised by a forward pass on the meta device, is an operator meeting a tensor
    made elsewhere (a factory such as ``torch.arange(n)`` without ``device=`` makes it on the CPU;
    some meta kernels name no device: "Expected `value` to be on same device as `a`")."""
    text = str(exc)
    return any(marker in text for marker in _DEVICE_MIXES)


class _CpuScalarsOnMeta(TorchDispatchMode):
    """A zero-dimensional CPU tensor given to an operator with meta tensors is moved to meta first."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        values = (*args, *kwargs.values())
        if any(_cpu_scalar(v) for v in values) and any(isinstance(v, torch.Tensor) and v.is_meta for v in values):
            args = tuple(_on_meta(a) for a in args)
            kwargs = {k: _on_meta(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _cpu_scalar(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == "cpu" and value.dim() == 0


def _on_meta(value: Any) -> Any:
    return value.to("meta") if _cpu_scalar(value) else value


CPU_SCALARS_NOTE = ("on meta, a zero-dimensional CPU tensor the model gives an operator beside meta tensors (a fill "
                    "value made with torch.tensor) was moved to meta, as a device's kernels take such a scalar and "
                    "some meta kernels refuse it")


_GROUPED_REFUSAL = re.compile(r"Expected mat_[ab] to be BFloat16")
"""What torch's meta kernel for ``aten._grouped_mm`` says of a float32 operand."""


def refuses_float32_grouped(exc: BaseException) -> bool:
    """Whether ``exc`` is (or says it comes from) the meta kernel of grouped products refusing a
    float32 operand."""
    return _GROUPED_REFUSAL.search(str(exc)) is not None


class _GroupedInBFloat16(TorchDispatchMode):
    """``aten._grouped_mm`` on float32 meta tensors computed from bfloat16 stand-ins, its output cast
    back to the dtype the CPU kernel returns (``out_dtype``, else the first operand's); every other
    operator runs as it is."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is not torch.ops.aten._grouped_mm.default or not _float32_on_meta(args[0]):
            return func(*args, **kwargs)
        out_dtype = kwargs.pop("out_dtype", None)
        if len(args) > 4:
            args, out_dtype = args[:4], args[4]
        # NB: only shapes come out of a meta kernel, and a grouped product's shape is its operands' whatever the dtype.
        output = func(*map(_stand_in, args), **{k: _stand_in(v) for k, v in kwargs.items()})
        return output.to(out_dtype or args[0].dtype)


def _float32_on_meta(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.device.type == "meta" and value.dtype == torch.float32


def _stand_in(value: Any) -> Any:
    return value.to(torch.bfloat16) if _float32_on_meta(value) else value


GROUPED_NOTE = ("on meta, torch's kernel for grouped products (aten._grouped_mm, as in mixture-of-experts layers) "
                "takes bfloat16 only, where the CPU's takes float32: their output shapes were computed from bfloat16 "
                "stand-ins, which changes no shape and so no count")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from (the flopaudit error that says a trial forward
    failed holds the model's as its cause)."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def _raised_through(exc: BaseException, file: str, functions: Sequence[str] = ()) -> bool:
    """Does ``exc``'s traceback pass through a file whose path ends in ``file`` (in one of
    ``functions``, where given)?"""
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename.endswith(file) and (not functions or code.co_name in functions):
            return True
        tb = tb.tb_next
    return False


@contextlib.contextmanager
def _replaced(owner: Any, name: str, replacement: Any) -> Iterator[None]:
    """For the block, ``owner.name`` is ``replacement``; put back on exit."""
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


_AUTOCAST = torch.amp.autocast_mode.autocast
"""``torch.autocast`` (also ``torch.amp.autocast``; the device-named autocasts are its subclasses)."""


def refuses_meta_autocast(exc: BaseException) -> bool:
    """Whether ``exc`` is (or was raised from) ``torch.autocast`` refusing the meta device, in its
    constructor: the flopaudit error that says a trial forward failed holds it as its cause."""
    return any(any(refusal in str(link) for refusal in _AUTOCAST_REFUSALS) and _raised_through(link, "autocast_mode.py")
               for link in _chain(exc))


_AUTOCAST_REFUSALS = ("unsupported scalarType", "unsupported autocast device_type 'meta'")
"""What ``torch.autocast("meta")`` raises: without a dtype, reading the device's default one; with
one (torchtitan's mixture-of-experts router: ``dtype=torch.float32``), checking the device."""


@contextlib.contextmanager
def _autocast_on_meta_does_nothing() -> Iterator[None]:
    """For the block, ``torch.autocast("meta", ...)`` is a context (and decorator) that does nothing;
    autocast on any other device is left as it is."""
    init, enter, exit_ = _AUTOCAST.__init__, _AUTOCAST.__enter__, _AUTOCAST.__exit__

    def __init__(self: Any, device_type: str, *args: Any, **kwargs: Any) -> None:  # noqa: N807 - stands for it
        self._flopaudit_on_meta = device_type == "meta"
        if self._flopaudit_on_meta:
            self.device = device_type
            self._enabled = False
            return
        init(self, device_type, *args, **kwargs)

    def __enter__(self: Any) -> Any:  # noqa: N807
        return None if getattr(self, "_flopaudit_on_meta", False) else enter(self)

    def __exit__(self: Any, *exc_info: Any) -> Any:  # noqa: N807
        return None if getattr(self, "_flopaudit_on_meta", False) else exit_(self, *exc_info)

    _AUTOCAST.__init__, _AUTOCAST.__enter__, _AUTOCAST.__exit__ = __init__, __enter__, __exit__  # type: ignore[method-assign]
    try:
        yield
    finally:
        _AUTOCAST.__init__, _AUTOCAST.__enter__, _AUTOCAST.__exit__ = init, enter, exit_  # type: ignore[method-assign]


AUTOCAST_NOTE = ("on meta, torch.autocast('meta') raises where the model asks for autocast on its tensors' device: it "
                 "was made to do nothing there, so operators ran in the dtypes they were given, which changes no "
                 "shape and so no count (where the model turns autocast on, bytes read and written may differ)")


def checks_distribution_arguments(exc: BaseException) -> bool:
    """Whether ``exc`` was raised where ``torch.distributions`` asks whether its argument checks passed."""
    return any(_raised_through(link, _DISTRIBUTION_FILE, ("__init__", "_validate_sample")) for link in _chain(exc))


_DISTRIBUTION_FILE = os.path.join("torch", "distributions", "distribution.py")


@contextlib.contextmanager
def _distribution_checks_pass_on_meta() -> Iterator[None]:
    """For the block, ``torch._is_all_true`` (how ``torch.distributions`` asks whether its checks
    passed) runs as it is and answers yes for a meta tensor."""
    original = torch._is_all_true

    def is_all_true(tensor: torch.Tensor) -> Any:
        answer = original(tensor)  # (dispatched: counted as on the CPU)
        return True if tensor.device.type == "meta" else answer

    with _replaced(torch, "_is_all_true", is_all_true):
        yield


DISTRIBUTION_CHECKS_NOTE = ("on meta, torch.distributions' checks of a distribution's arguments (and of a sample given "
                            "to log_prob) ran as on the CPU and were taken to pass, as meta tensors hold no values to "
                            "fail them")


_META_TYPE_NAME = "torch.meta."
"""How ``Tensor.type()`` begins a meta tensor's type name (``torch.meta.FloatTensor``)."""


def refuses_meta_type_name(exc: BaseException) -> bool:
    """Whether ``exc`` is ``Tensor.type`` refusing a meta tensor's type name."""
    return any(f"invalid type: '{_META_TYPE_NAME}" in str(link) for link in _chain(exc))


@contextlib.contextmanager
def _meta_type_names_cast() -> Iterator[None]:
    """For the block, ``Tensor.type("torch.meta.<Kind>Tensor")`` casts to that kind's dtype
    (``torch.<Kind>Tensor.dtype``) with ``Tensor.to``; every other call runs as it is."""
    original = torch.Tensor.type

    def type_(self: torch.Tensor, dtype: Any = None, non_blocking: bool = False, **kwargs: Any) -> Any:
        if isinstance(dtype, str) and dtype.startswith(_META_TYPE_NAME):
            legacy = getattr(torch, dtype[len(_META_TYPE_NAME):], None)
            if isinstance(getattr(legacy, "dtype", None), torch.dtype):
                return self.to(legacy.dtype, non_blocking=non_blocking)
        return original(self, dtype, non_blocking, **kwargs)

    with _replaced(torch.Tensor, "type", type_):
        yield


META_TYPE_NAMES_NOTE = ("on meta, Tensor.type() names a tensor's type torch.meta.<Kind>Tensor, which Tensor.type refuses "
                        "to cast to (the model casts with x.type(y.type())): such a name cast to its dtype, as the "
                        "CPU's torch.<Kind>Tensor does there")


_JUMPS_IF_TRUE = frozenset(op for name, op in dis.opmap.items() if "JUMP" in name and name.endswith("IF_TRUE"))
_TO_BOOL = dis.opmap.get("TO_BOOL")  # (Python 3.13: converts before the jump)
_LOAD_ASSERTION_ERROR = dis.opmap["LOAD_ASSERTION_ERROR"]


@functools.lru_cache(maxsize=256)
def _instructions(code: Any) -> tuple[dict[int, int], tuple[dis.Instruction, ...]]:
    """``code``'s instructions and the index of each by its offset."""
    found = tuple(dis.get_instructions(code))
    return {ins.offset: i for i, ins in enumerate(found)}, found


def _asserting(code: Any, lasti: int) -> bool:
    """Is the instruction at ``lasti`` of ``code`` the test of an ``assert`` statement (the
    conversion to bool that jumps past raising ``AssertionError`` when true)?"""
    at, instructions = _instructions(code)
    i = at.get(lasti)
    if i is None:
        return False
    if instructions[i].opcode == _TO_BOOL and i + 1 < len(instructions):
        i += 1
    return (instructions[i].opcode in _JUMPS_IF_TRUE and i + 1 < len(instructions)
            and instructions[i + 1].opcode == _LOAD_ASSERTION_ERROR)


def _outside_torch(name: str) -> bool:
    return not (name == "torch" or name.startswith(("torch.", "flopaudit.")) or name == "flopaudit")


def asserted_value_site(exc: BaseException) -> str | None:
    """Where the model's code asserts a value that ``exc`` says a meta tensor cannot give: its
    ``module:function (line N)``, where the innermost frame of the traceback outside torch and
    flopaudit is at an ``assert`` statement's test; None otherwise."""
    for link in _chain(exc):
        if not reads_values(link):
            continue
        last = None
        tb = link.__traceback__
        while tb is not None:
            if _outside_torch(tb.tb_frame.f_globals.get("__name__", "")):
                last = tb
            tb = tb.tb_next
        if last is not None and _asserting(last.tb_frame.f_code, last.tb_lasti):
            frame = last.tb_frame
            return f"{frame.f_globals.get('__name__', '?')}:{frame.f_code.co_name} (line {last.tb_lineno})"
    return None


class _AssertionsHoldOnMeta(TorchDispatchMode):
    """A meta tensor's truth asked by the model's code at an ``assert`` statement is True; every
    other operator, and every other value read, runs as it is."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default and args and getattr(args[0], "is_meta", False):
            frame = sys._getframe(1)
            while frame is not None and not _outside_torch(frame.f_globals.get("__name__", "")):
                frame = frame.f_back  # type: ignore[assignment]
            if frame is not None and _asserting(frame.f_code, frame.f_lasti):
                return True
        return func(*args, **(kwargs or {}))


def refuses_meta_equal(exc: BaseException) -> bool:
    """Whether ``exc`` is ``aten.equal`` refusing meta tensors (it has no meta kernel; ``torch.istft``'s
    window check calls it)."""
    return any("aten::equal: attempted to run this operator with Meta tensors" in str(link) for link in _chain(exc))


class _WindowCheckPasses(TorchDispatchMode):
    """``aten.equal`` of two zero-dimensional boolean meta tensors answers False: inside ``torch.istft``,
    its window check (is the envelope's minimum below its tolerance?) found nothing to refuse."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
        if (func is torch.ops.aten.equal.default and len(args) == 2
                and all(isinstance(a, torch.Tensor) and a.is_meta and a.dim() == 0 and a.dtype == torch.bool
                        for a in args)):
            return False
        return func(*args, **(kwargs or {}))


def _checked_on_meta(istft: Any) -> Any:
    """``istft`` run with :class:`_WindowCheckPasses` where its input is a meta tensor."""
    def wrapper(input: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(input, torch.Tensor) and input.is_meta:
            with _WindowCheckPasses():
                return istft(input, *args, **kwargs)
        return istft(input, *args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _istft_window_check_passes_on_meta() -> Iterator[None]:
    """For the block, ``torch.istft``, ``torch.functional.istft`` and ``Tensor.istft`` take their window
    check to pass on meta tensors."""
    with contextlib.ExitStack() as stack:
        for owner in (torch, torch.functional, torch.Tensor):
            if hasattr(owner, "istft"):
                stack.enter_context(_replaced(owner, "istft", _checked_on_meta(owner.istft)))
        yield


ISTFT_NOTE = ("on meta, torch.istft's check that its window's overlap-add never vanishes (NOLA) compares values with "
              "aten.equal, which has no meta kernel: the check was taken to pass, as it must on a device for the "
              "forward to run; every operator istft runs was counted as on the CPU")


def assertions_note(site: str) -> str:
    """What every count of a model whose value assertions were taken to hold on meta says."""
    return (f"on meta, the model's code asserts tensor values (first at {site}), which meta tensors do not have: "
            "each such assert was taken to hold, as it must on a device for the forward to run; the operators "
            "computing its condition were counted as on the CPU")


def refuses_meta_flex_attention(exc: BaseException) -> bool:
    """Whether ``exc`` is (or was raised from) ``flex_attention``'s device check refusing meta tensors."""
    return any("FlexAttention is only supported on" in str(link) and "meta device" in str(link)
               for link in _chain(exc))


@contextlib.contextmanager
def _flex_attention_on_meta() -> Iterator[None]:
    """For the block, ``flex_attention``'s device check passes meta tensors and checks the rest as it does."""
    from torch.nn.attention import flex_attention

    original = flex_attention._validate_device

    def validate_device(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> None:
        if query.device.type != "meta":
            original(query, key, value)

    with _replaced(flex_attention, "_validate_device", validate_device):
        yield


FLEX_ATTENTION_NOTE = ("on meta, flex_attention's device check refuses meta tensors (it lists the devices its kernels "
                       "run on): it let them through, and the operator ran its dense kernel there, which computes the "
                       "shapes its CPU kernel does")


def traced_branch_note(sites: Sequence[str]) -> str:
    """What every count of a model run on meta in its traced branch says (``sites``: where its code
    asked whether it is traced)."""
    return (f"on meta the model's code asks whether it is traced ({', '.join(sites)}) and otherwise reads tensor "
            "values, which meta tensors do not have: it was answered yes and counted in the branch it takes under "
            "a trace (transformers then leaves out its padding-token and attention-mask checks and makes its "
            "attention mask instead of skipping it)")


@contextlib.contextmanager
def answered_as_traced(model: nn.Module) -> Iterator[dict[str, int]]:
    """For the block, ``torch.jit.is_tracing()`` asked by the model's code (and by the libraries it
    calls) answers yes (:func:`flopaudit.reference.patching.answering_tracing`); yields where it was asked."""
    from flopaudit.model_code import model_namespaces
    from flopaudit.reference.patching import answering_tracing

    asked: dict[str, int] = {}
    with answering_tracing(True, asked, model_namespaces(model)):
        yield asked


_SWITCHED_WAYS: tuple[tuple[str, Callable[[], Any], str], ...] = (
    ("grouped_in_bfloat16", _GroupedInBFloat16, GROUPED_NOTE),
    ("cpu_scalars_on_meta", _CpuScalarsOnMeta, CPU_SCALARS_NOTE),
    ("autocast_does_nothing", _autocast_on_meta_does_nothing, AUTOCAST_NOTE),
    ("distribution_checks_pass", _distribution_checks_pass_on_meta, DISTRIBUTION_CHECKS_NOTE),
    ("meta_type_names_cast", _meta_type_names_cast, META_TYPE_NAMES_NOTE),
    ("flex_attention_on_meta", _flex_attention_on_meta, FLEX_ATTENTION_NOTE),
    ("istft_check_passes", _istft_window_check_passes_on_meta, ISTFT_NOTE),
)
"""The workarounds a flag of :class:`MetaWorkarounds` turns on, in the order they are entered:
``(field, the context that applies it, what a count made with it says)``."""


@dataclass(frozen=True)
class MetaWorkarounds:
    """The ways round a meta-device failure a model needs (none: it runs there as it is)."""

    traced_sites: tuple[str, ...] = ()
    """Where the model's code asks ``torch.jit.is_tracing()``, answered yes; ``()``: not answered."""
    grouped_in_bfloat16: bool = False
    """Float32 grouped products on meta computed from bfloat16 stand-ins."""
    traced: bool = False
    """``torch.jit.is_tracing()`` answered yes (``traced_sites`` says where it was asked)."""
    cpu_scalars_on_meta: bool = False
    """Zero-dimensional CPU tensors given with meta tensors moved to meta."""
    autocast_does_nothing: bool = False
    """``torch.autocast("meta")`` made to do nothing."""
    distribution_checks_pass: bool = False
    """``torch.distributions``' argument checks taken to pass on meta."""
    meta_type_names_cast: bool = False
    """``Tensor.type("torch.meta.<Kind>Tensor")`` casts to that kind's dtype."""
    flex_attention_on_meta: bool = False
    """``flex_attention``'s device check lets meta tensors through."""
    istft_check_passes: bool = False
    """``torch.istft``'s window check taken to pass on meta tensors."""
    assertion_site: str = ""
    """Where the model's code first asserts a value (``module:function (line N)``); assertions on
    meta tensors' values are then taken to hold. ``""``: not answered."""

    def __bool__(self) -> bool:
        return self.traced or bool(self.assertion_site) or any(getattr(self, flag) for flag, _, _ in _SWITCHED_WAYS)

    @contextlib.contextmanager
    def applied(self, model: nn.Module, *, tracing: bool = True) -> Iterator[dict[str, int]]:
        """For the block, the workarounds on; yields where ``is_tracing()`` was asked (when answered).
        ``tracing=False`` leaves ``is_tracing()`` to the caller (the recorder answers it itself)."""
        with contextlib.ExitStack() as stack:
            for flag, context, _ in _SWITCHED_WAYS:
                if getattr(self, flag):
                    stack.enter_context(context())
            if self.assertion_site:
                stack.enter_context(_AssertionsHoldOnMeta())
            yield stack.enter_context(answered_as_traced(model)) if self.traced and tracing else {}

    def notes(self) -> tuple[str, ...]:
        """What every count made with these workarounds says."""
        return ((traced_branch_note(self.traced_sites),) if self.traced else ()) + \
            tuple(note for flag, _, note in _SWITCHED_WAYS if getattr(self, flag)) + \
            ((assertions_note(self.assertion_site),) if self.assertion_site else ())


_T = TypeVar("_T")


def run_on_meta(attempt: Callable[[MetaWorkarounds], _T], failure: BaseException,
                traced_sites: Callable[[_T], Sequence[str]]) -> tuple[_T, MetaWorkarounds]:
    """``attempt(workarounds)`` after it raised ``failure`` with none: the workaround for each failure
    is added, if there is one not yet on, and ``attempt`` run again. Returns its result and the
    workarounds it ran with, ``traced_sites`` reading from the result where ``is_tracing()`` was
    asked. Raises the last failure where no workaround is left to try, or where answering
    ``is_tracing()`` changed nothing (no code asked)."""
    ways = MetaWorkarounds()
    while True:
        site = None if ways.assertion_site else asserted_value_site(failure)
        if checks_distribution_arguments(failure) and not ways.distribution_checks_pass:
            ways = dataclasses.replace(ways, distribution_checks_pass=True)
        elif site is not None:
            ways = dataclasses.replace(ways, assertion_site=site)
        elif refuses_meta_flex_attention(failure) and not ways.flex_attention_on_meta:
            ways = dataclasses.replace(ways, flex_attention_on_meta=True)
        elif refuses_meta_equal(failure) and not ways.istft_check_passes:
            ways = dataclasses.replace(ways, istft_check_passes=True)
        elif reads_values(failure) and not ways.traced:
            ways = dataclasses.replace(ways, traced=True)
        elif refuses_float32_grouped(failure) and not ways.grouped_in_bfloat16:
            ways = dataclasses.replace(ways, grouped_in_bfloat16=True)
        elif mixes_devices(failure) and not ways.cpu_scalars_on_meta:
            ways = dataclasses.replace(ways, cpu_scalars_on_meta=True)
        elif refuses_meta_autocast(failure) and not ways.autocast_does_nothing:
            ways = dataclasses.replace(ways, autocast_does_nothing=True)
        elif refuses_meta_type_name(failure) and not ways.meta_type_names_cast:
            ways = dataclasses.replace(ways, meta_type_names_cast=True)
        else:
            raise failure
        try:
            result = attempt(ways)
        except Exception as exc:  # noqa: BLE001 - the next workaround, or the end
            failure = exc
            continue
        if not ways.traced:
            return result, ways
        sites = tuple(sorted(traced_sites(result)))
        if not sites:
            raise failure  # (nothing asked: the traced branch is not what made it run)
        return result, dataclasses.replace(ways, traced_sites=sites)
