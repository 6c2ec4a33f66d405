"""Failures of a backend turned into messages that name their cause.

Old counters assert shapes without a message (torchstat's ``assert
len(inp.size()) == 2``, calflops' ``assert weight.shape[1] * groups ==
input.shape[1]``): a result reading "AssertionError: " says nothing.
:func:`located_assertions` re-raises such an assertion with the function,
file, line and source of the check that failed. Hook-based counters fail
inside their hooks on a module's input or output that they cannot read:
:func:`frame_locals`, :func:`module_named` and :func:`type_named` let an
adapter say which module gave what. The other functions each read one known
failure from its traceback (a form of a call that a counter's rule does not
take, a trace through a custom autograd Function, a model failing in the
branch it takes when traced) and say what raised it; each returns nothing
for any other error.
"""

from __future__ import annotations

import contextlib
import linecache
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flopaudit.errors import failed_assertion

if TYPE_CHECKING:
    from types import FrameType

    from torch import nn

    from flopaudit.errors import BackendFailure
    from flopaudit.inputs import ModelInputs


def named_failure(exc: BaseException, cause: str) -> BackendFailure:
    """``exc``, a backend's failure, with what the adapter can say of it: ``Type: message; cause``
    (an assert's message, its bare operand, replaced by :func:`failed_assertion`); raise it ``from exc``."""
    from flopaudit.errors import BackendFailure

    said = failed_assertion(exc) if isinstance(exc, AssertionError) else str(exc)
    return BackendFailure(f"{type(exc).__name__}: {said}; {cause}")


@contextlib.contextmanager
def located_assertions(at: Callable[[BaseException], str | None] | None = None) -> Iterator[None]:
    """Re-raise an ``AssertionError`` from the block with :func:`failed_assertion` as its message
    (and the original traceback, so that the error still says where it was raised), followed by
    what ``at`` reads of it (the layer being counted), if anything."""
    try:
        yield
    except AssertionError as exc:
        where = at(exc) if at is not None else None
        message = failed_assertion(exc) + (f"; {where}" if where else "")
        raise AssertionError(message).with_traceback(exc.__traceback__) from exc


def frame_locals(exc: BaseException, module: str, function: str | None = None,
                 holding: str | None = None) -> dict[str, Any] | None:
    """The variables of the innermost call of ``function`` (any function where None) of the
    Python module named ``module`` in ``exc``'s traceback (one whose variables include
    ``holding``, if given), as they were when it raised; None if it is not there."""
    found = None
    for frame, _ in frames_of(exc):
        if (function is None or frame.f_code.co_name == function) and frame.f_globals.get("__name__") == module \
                and (holding is None or holding in frame.f_locals):
            found = frame.f_locals
    return found


def torch_or_flopaudit(module: str) -> bool:
    """Is the Python module named ``module`` torch's or flopaudit's own (not a counter's, a library's
    or the model's)?"""
    return module in ("torch", "flopaudit") or module.startswith(("torch.", "flopaudit."))


def frames_of(exc: BaseException) -> Iterator[tuple[FrameType, int]]:
    """The frames of ``exc``'s traceback, outermost first, each with the line it was running."""
    tb = exc.__traceback__
    while tb is not None:
        yield tb.tb_frame, tb.tb_lineno
        tb = tb.tb_next


def module_named(model: nn.Module, module: Any) -> str:
    """``module 'encoder.layer.0' (Dinov2Layer)``, or ``the model (Net)`` for the root (or a module
    not in ``model``)."""
    path = next((n for n, m in model.named_modules() if m is module), "")
    return f"module '{path}' ({type(module).__name__})" if path else f"the model ({type(module).__name__})"


def type_named(value: Any) -> str:
    """``None``, ``a dict``, ``an int``, ``a transformers.modeling_outputs.BaseModelOutputWithPast``."""
    if value is None:
        return "None"
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return ("an " if name[:1].lower() in "aeiou" else "a ") + name


def packed_sequence_hint(exc: BaseException, model: nn.Module) -> str:
    """For a counter's RNN rule that read a ``PackedSequence`` as a tensor ("'PackedSequence' object
    has no attribute 'shape'": thop's, ptflops', calflops' and DeepSpeed's hooks read ``input[0]``'s
    shape), which module it was counting, from the innermost frame holding one of ``model``'s
    modules; ``""`` for any other error."""
    if "'PackedSequence' object has no attribute" not in str(exc):
        return ""
    found = _held_module(exc, model)
    where = module_named(model, found) if found is not None else "an RNN module"
    return (f"; {where} was given a PackedSequence (what pack_padded_sequence makes), and the counter's RNN rule "
            "reads its input as a padded tensor")


def keyword_only_call_hint(exc: BaseException, model: nn.Module) -> str:
    """For a counter's forward hook that unpacks a module's positional inputs (ptflops' hook for
    ``nn.MultiheadAttention``: ``q, k, v = input``) on a module given some or all of them as keyword
    arguments (Mask2Former calls ``self_attn(query=..., key=..., value=...)``, ultralytics' RT-DETR
    ``self.ma(q, k, value=src)``): a hook registered without ``with_kwargs`` is given the positional
    inputs alone, here fewer than it unpacks. Which module, from the innermost frame of the
    counter's code holding one of ``model``'s modules and an ``input`` tuple as long as the error says
    it got; ``""`` for any other error."""
    if not isinstance(exc, (ValueError, IndexError, TypeError)):
        return ""
    unpacked = re.search(r"not enough values to unpack \(expected (\d+), got (\d+)\)", str(exc))
    got = int(unpacked.group(2)) if unpacked else 0

    def hook_given_too_few(frame: FrameType) -> bool:
        given = frame.f_locals.get("input")
        return (not torch_or_flopaudit(frame.f_globals.get("__name__", "")) and type(given) is tuple
                and len(given) == got)

    found = _held_module(exc, model, hook_given_too_few)
    if found is None:
        return ""
    if got == 0:
        return (f"; {module_named(model, found)} was called with keyword arguments only, and the counter's forward "
                "hook, which is given a module's positional inputs alone, found none")
    return (f"; {module_named(model, found)} was called with {got} positional argument{'s' * (got != 1)} and the "
            f"rest as keyword arguments, and the counter's forward hook, which is given a module's positional "
            f"inputs alone, unpacks {unpacked.group(1)}")


def traced_state_hint(exc: BaseException, model: nn.Module) -> str:
    """For ``torch.jit.trace`` (fvcore's and torchprofile's) refusing a graph input that is not a tensor
    ("Only tensors or (possibly nested) dict or tuples of tensors can be inputs to traced functions"):
    the trace takes every ``state_dict`` entry as an input, and torch.ao's quantized modules keep a
    dtype (dynamically quantized ``Linear``), numbers or TorchScript objects there; which entry and
    module; ``""`` for any other error, or where every entry is a tensor."""
    import torch

    if "can be inputs to traced functions" not in str(exc):
        return ""
    try:
        state = model.state_dict(keep_vars=True)
    except Exception:  # noqa: BLE001 - a module whose state cannot be read: nothing to say
        return ""
    key, value = next(((k, v) for k, v in state.items() if not isinstance(v, torch.Tensor)), (None, None))
    if key is None:
        return ""
    try:
        owner = f" of {module_named(model, model.get_submodule(key.rpartition('.')[0]))}"
    except AttributeError:  # (a key that is not a module path)
        owner = ""
    return f"; the trace takes every state_dict entry as a graph input, and '{key}'{owner} is {type_named(value)}"


def reentrant_checkpoint_hint(exc: BaseException) -> str:
    """For a JIT trace (fvcore's, torchprofile's) failing on ``torch.utils.checkpoint``'s reentrant form
    (``use_reentrant=True``, which torch takes where it is not given): its ``CheckpointFunction.apply``
    raises "unordered_map::at" under the trace; ``""`` for any other error."""
    if str(exc) != "unordered_map::at":
        return ""
    inner = None
    for frame, lineno in frames_of(exc):
        if frame.f_globals.get("__name__") == "torch.utils.checkpoint":
            inner = (frame, lineno)
    if inner is None or "CheckpointFunction.apply" not in linecache.getline(inner[0].f_code.co_filename, inner[1]):
        return ""
    return ("; raised by torch.utils.checkpoint in its reentrant form (use_reentrant=True, taken where it is not "
            "given), an autograd Function that a JIT trace cannot record (use_reentrant=False can be traced)")


def traced_function_hint(exc: BaseException, model: nn.Module) -> str:
    """For a JIT trace (fvcore's, torchprofile's) failing with "unordered_map::at" on a custom
    ``torch.autograd.Function`` whose ``forward`` runs tensors it is not given, such as the
    parameters of modules passed to it or held outside (Reformer's ``_ReversibleFunction.apply(
    hidden_states, self.layers, ...)`` runs its layers inside): the trace records the call as one
    node and has no graph value for those tensors. Which Function, called in which of ``model``'s
    modules; ``""`` for any other error, and for ``torch.utils.checkpoint``'s own Function
    (:func:`reentrant_checkpoint_hint` names it)."""
    import torch

    if str(exc) != "unordered_map::at":
        return ""
    called = None
    for frame, lineno in frames_of(exc):
        line = linecache.getline(frame.f_code.co_filename, lineno)
        for name in _APPLIED.findall(line):
            kind = frame.f_locals.get(name, frame.f_globals.get(name))
            if isinstance(kind, type) and issubclass(kind, torch.autograd.Function):
                called = kind
    if called is None or called.__module__ == "torch.utils.checkpoint":
        return ""
    return (f"; raised by the custom autograd Function {called.__name__}{_called_in(exc, model)}, whose forward runs "
            "tensors it is not given as inputs (the parameters of the modules it runs): a JIT trace records the "
            "Function as one node and has no graph value for them")


def untracked_gradient_hint(exc: BaseException, model: nn.Module) -> str:
    """For ``torch.utils.module_tracker`` (``FlopCounterMode``'s, with autograd on) failing with
    "Expected gradient function to be set": its forward pre-hook registers a backward hook on
    each input of a module that requires grad, and a module called inside a custom autograd
    Function's ``forward`` (Reformer's reversible layers), where autograd records nothing, is
    given a view of such a tensor that has no gradient node. Which module, and which Function;
    ``""`` for any other error."""
    if "Expected gradient function to be set" not in str(exc):
        return ""
    hook = frame_locals(exc, "torch.utils.module_tracker", "_fw_pre_hook", holding="mod")
    if hook is None:
        return ""
    function = ""
    for frame, _ in frames_of(exc):  # the innermost Function's forward(ctx, ...)
        code = frame.f_code
        if code.co_name == "forward" and code.co_varnames[:1] == ("ctx",):
            function = (getattr(code, "co_qualname", "").split(".")[-2:-1] or [""])[0]  # (its class's own name)
    inside = (f" inside the forward of the custom autograd Function {function}" if function
              else " inside a custom autograd Function's forward")
    return (f"; torch's module tracker registers a backward hook on each module input that requires grad, and "
            f"{module_named(model, hook['mod'])} is given one{inside}, where autograd records nothing, so no "
            "gradient node is found for it")


def grad_in_backward_hint(exc: BaseException, model: nn.Module) -> str:
    """For ``torch.utils.module_tracker`` (``FlopCounterMode``'s, with autograd on) failing with "A
    leaf node was passed to _will_engine_execute_node but we are currently running
    autograd.grad()": it hooks the gradient of each module input that requires grad, and a
    custom autograd Function whose backward calls modules and takes ``torch.autograd.grad`` of
    them (torchdiffeq's adjoint method solves an ODE backwards there), or a forward that takes
    gradients itself (``torch.func.jacrev``), reaches a leaf, which torch's hook does not support
    inside ``autograd.grad``. Which Function (if any) and module; ``""`` for any other error."""
    if "_will_engine_execute_node but we are currently running autograd.grad()" not in str(exc):
        return ""
    function = ""
    for frame, _ in frames_of(exc):  # the outermost Function's backward(ctx, ...)
        code = frame.f_code
        if not function and code.co_name == "backward" and code.co_varnames[:1] == ("ctx",):
            function = (getattr(code, "co_qualname", "").split(".")[-2:-1] or [""])[0]
    if function:
        taken = (f"the custom autograd Function {function}'s backward calls the model's modules and takes "
                 f"torch.autograd.grad of them{_called_in(exc, model)}")
    else:  # (no Function's backward running: the forward differentiates, as torch.func.jacrev does)
        taken = (f"the model takes gradients inside its forward (torch.autograd.grad, or torch.func's grad, jacrev "
                 f"or vjp){_called_in(exc, model)}")
    return (f"; {taken}: torch's module tracker hooks the gradient of each module input, and that hook does not "
            "support a leaf reached inside autograd.grad")


_NO_TENSOR_ATTRIBUTE = re.compile(r"^'Tensor' object has no attribute '(\w+)'$")
"""An AttributeError of a tensor; the attribute follows."""


_TENSOR_FOR_A_NUMBER = re.compile(r"^([\w.]+)\(\): argument '(\w+)'(?: \(position \d+\))? must be ([\w ]+), not Tensor$")
"""A TypeError of torch's argument parser given a tensor for a Python number or bool; the function,
the argument and the type it takes follow."""


def traced_size_number_hint(exc: BaseException, model: nn.Module) -> str:
    """For a JIT trace (fvcore's, torchprofile's) failing where the model's code uses a value computed
    from a size as a Python number: a trace records each size the code reads (``x.shape[i]``) as a
    0-dim tensor, and arithmetic or a comparison on it gives a tensor, which has no method of Python
    numbers (local-attention's ``(seqlen / multiple).is_integer()``) and which torch's functions
    refuse where they take a number or a bool (openai-whisper's
    ``scaled_dot_product_attention(..., is_causal=mask is not None and n_ctx > 1)``). Where;
    ``""`` for any other error."""
    if not any(frame.f_code.co_filename.endswith(("jit/_trace.py", "jit\\_trace.py")) for frame, _ in frames_of(exc)):
        return ""
    found = _NO_TENSOR_ATTRIBUTE.match(str(exc)) if isinstance(exc, AttributeError) else None
    if found is not None and (hasattr(int, found[1]) or hasattr(float, found[1])):
        return (f"; the model's code{_called_in(exc, model)} calls .{found[1]}(), a method of Python numbers, on a "
                "value computed from a size: a JIT trace records the sizes it reads as 0-dim tensors, and a tensor "
                "has no such method")
    found = _TENSOR_FOR_A_NUMBER.match(str(exc)) if isinstance(exc, TypeError) else None
    if found is not None:
        return (f"; the model's code{_called_in(exc, model)} gives {found[1]}() a tensor as its {found[2]!r} (it "
                f"takes a {found[3]}) where an eager pass gives a Python value: a JIT trace records the sizes the "
                "code reads as 0-dim tensors, and a comparison or arithmetic on one gives a tensor")
    return ""


def traced_grad_outputs_hint(exc: BaseException, model: nn.Module) -> str:
    """For a JIT trace (fvcore's, torchprofile's) through ``torch.autograd.grad`` given
    ``grad_outputs``: autograd compares each output's size with its gradient's
    (``sym_eq(out.size(), grad.size())``), and under a trace those sizes are tensors, which torch's
    ``sym_eq`` refuses ("unexpected sym_eq between Tensor Tensor", torch 2.14). zuko's flows take
    their Jacobians so. Where; ``""`` for any other error."""
    if "unexpected sym_eq between" not in str(exc) or not any(
            frame.f_code.co_name == "_make_grads" for frame, _ in frames_of(exc)):
        return ""
    return (f"; the model calls torch.autograd.grad with grad_outputs{_called_in(exc, model)}, which torch cannot "
            "trace: autograd compares each output's size with its gradient's, and a trace holds those sizes as "
            "tensors, which torch's sym_eq refuses")


def traced_functional_call_hint(exc: BaseException, model: nn.Module) -> str:
    """For a JIT trace (fvcore's, torchprofile's) through ``torch.func.functional_call`` (or
    ``torch.nn.utils.stateless``), which refuses a module being traced ("The stateless API can't be
    used with Jitted modules"): under a trace every module of the model is one. titans' neural
    memory calls its memory network so, with weights it updates as it reads. Where; ``""`` for any
    other error."""
    if "stateless API can't be used with Jitted modules" not in str(exc):
        return ""
    return (f"; the model calls torch.func.functional_call on one of its modules{_called_in(exc, model)}, which "
            "refuses a module while a JIT trace runs it: under a trace every module of the model is a traced one")


_TRANSFORM_WRITE = re.compile(r"During a (?:grad \(vjp, jvp, grad, etc\)|vmap) transform.*?in-place operation "
                              r"\((aten::[\w.]+)\) that would mutate a captured Tensor", re.S)
"""torch.func's refusal of an in-place write, inside a transformed function, to a tensor made outside it."""


def transform_write_hint(exc: BaseException, model: nn.Module, backend_module: str) -> str:
    """For a hook-based counter (thop, ptflops) whose hook adds a module's count to a tensor of its
    own in place while the module runs inside a ``torch.func`` transform (``grad``, ``vjp``,
    ``vmap``): torch.func refuses an in-place write to a tensor captured from outside the
    transformed function. titans' neural memory takes the gradient of its memory network so. Where;
    ``""`` for any other error, or one not raised in ``backend_module``."""
    found = _TRANSFORM_WRITE.search(str(exc))
    if found is None or not any(frame.f_globals.get("__name__", "").split(".")[0] == backend_module.split(".")[0]
                                for frame, _ in frames_of(exc)):
        return ""
    ran = _called_in(exc, model).removeprefix(" in ") or "a module"
    return (f"; the counter's hook writes its count to a tensor of its own in place ({found[1]}) after {ran} ran "
            "inside a torch.func transform (grad, vjp, vmap), which refuses an in-place write to a tensor made "
            "outside the transformed function")


_NO_TRACED_SCHEMA = re.compile(r"We don't have an op for (aten::\w+) but it isn't a special case\.\s+"
                               r"Argument types: ([^\n]*?),?\s*(?:\n|$)")


def traced_argument_types_hint(exc: BaseException, model: nn.Module) -> str:
    """For a JIT trace (fvcore's, torchprofile's) failing in torch's alias analysis ("We don't have
    an op for aten::masked_fill but it isn't a special case", an internal assert of torch 2.14): the
    traced graph holds a call whose arguments' types match none of its operator's schemas, a Python
    bool given where the operator takes a number (torchtune's fusion layers write
    ``mask.masked_fill(skip, True)``). The analysis runs once the forward has returned, so the
    traceback holds no frame of the model: the call and its types are named, not where it is.
    ``""`` for any other error."""
    found = _NO_TRACED_SCHEMA.search(str(exc)) if isinstance(exc, RuntimeError) else None
    if found is None:
        return ""
    types = found[2].strip().rstrip(",")
    why = (": a Python bool given where the operator takes a number (x.masked_fill(mask, True)) matches none of "
           "its schemas" if "bool" in [t.strip() for t in types.split(",")] else
           ", which match none of its schemas")
    return (f"; the traced graph holds a call of {found[1]} with arguments ({types}){why}, and torch's JIT fails "
            "on that graph once the forward has run")


def traced_constant_hint(exc: BaseException, model: nn.Module) -> str:
    """For a JIT trace (fvcore's, torchprofile's) refusing "a Tensor that requires grad as a
    constant": the trace holds every tensor that comes neither from the inputs nor from the
    model's parameters and buffers as a constant, and a constant may not require grad. Such a
    tensor was computed from the parameters with autograd on and kept (gpytorch's exact GP keeps
    its training prior and caches from its first call in eval mode), or made with
    ``requires_grad=True`` and held as a plain attribute. Where it was met; ``""`` for any other error."""
    if "Cannot insert a Tensor that requires grad as a constant" not in str(exc):
        return ""
    return (f"; the trace{_called_in(exc, model)} met a tensor that requires grad and is neither an input nor a "
            "parameter or buffer, which it must hold as a constant: one computed from the parameters with "
            "autograd on and kept from an earlier call (a cache), or made with requires_grad=True and held as a "
            "plain attribute")


_APPLIED = re.compile(r"(\w+)\.apply\(")
"""A Function's ``apply`` called on a line of source: ``_ReversibleFunction.apply(``."""


def traced_branch_failure(exc: BaseException, model: nn.Module, inputs: ModelInputs) -> str | None:
    """For a JIT trace (fvcore's, torchprofile's) failing in the model's own code: run ``model`` once
    eagerly with ``torch.jit.is_tracing()`` answered True for its code
    (:func:`~flopaudit.reference.patching.answering_tracing`), the branch it takes under a trace
    (transformers materialises an all-ones attention mask there that an eager pass skips, and
    Nystromformer adds that mask to its landmark scores, of another shape). If that raises the
    same error, the model fails when traced: which call sites asked. None where nothing asked,
    or that branch runs (the trace itself failed), or the run fails otherwise."""
    import torch

    from flopaudit.draws import same_draws
    from flopaudit.model_code import model_namespaces
    from flopaudit.reference.patching import answering_tracing

    asked: dict[str, int] = {}
    try:
        with same_draws(model=model), torch.no_grad(), answering_tracing(True, asked, model_namespaces(model)):
            given = inputs.fresh()
            model(*given.args, **given.kwargs)
    except Exception as again:  # noqa: BLE001 - compared with the trace's error
        if asked and type(again) is type(exc) and str(again) == str(exc):
            return (f"the model's code asks torch.jit.is_tracing() ({', '.join(sorted(asked))}) and takes another "
                    "branch when traced; run eagerly, that branch raises the same error: the model fails under a "
                    "JIT trace (an eager pass, as every other counter's, takes the other branch)")
    return None


def meta_trace_refusal(exc: BaseException) -> str | None:
    """For a JIT trace (fvcore's, torchprofile's) of a model on the meta device failing in one of torch's
    meta kernels, which checks a size with ``torch._check`` and is given a traced (tensor) condition
    ("cond must be a bool, but got a Tensor": every convolution's does): why the backend cannot count
    this model on meta, for a ``not applicable`` cell; None for any other error."""
    if not isinstance(exc, TypeError) or not str(exc).startswith("cond must be a bool, but got a Tensor"):
        return None
    kernels = [frame.f_code.co_name for frame, _ in frames_of(exc)
               if frame.f_globals.get("__name__") == "torch._meta_registrations"]
    if not kernels:
        return None
    what = "of a convolution" if "meta_conv" in kernels else f"through torch's meta kernel {kernels[0]}"
    return (f"cannot count on the meta device: a JIT trace {what} fails on meta tensors "
            "(TypeError: cond must be a bool, but got a Tensor)")


def einsum_operand_list(exc: BaseException, module: str, model: nn.Module) -> str | None:
    """For calflops' and DeepSpeed's einsum rule (``_einsum_flops_compute(equation, *operands)``
    in the Python module named ``module``, which reads each operand's ``.shape``) given the
    operands as one list or tuple, a form ``torch.einsum`` accepts (Longformer's
    ``torch.einsum("bcxd,bcyd->bcxy", (query, key))``): the equation and the model's module that
    called it; None for any other error."""
    rule = frame_locals(exc, module, "_einsum_flops_compute")
    operands = rule.get("operands", ()) if rule is not None else ()
    if len(operands) != 1 or not isinstance(operands[0], (list, tuple)):
        return None
    return (f"torch.einsum({rule['equation']!r}, ...){_called_in(exc, model)} is given its operands as one "  # type: ignore[index]
            f"{type(operands[0]).__name__}, a form torch accepts and the counter's einsum rule reads as one operand")


def sdpa_keyword_tensors(exc: BaseException, module: str, model: nn.Module) -> str | None:
    """For DeepSpeed's attention rule (``_attn_flops_compute(q, k, v, *args, **kwargs)`` in the
    Python module named ``module``, which its wrapper of ``F.scaled_dot_product_attention``
    calls with the call's own arguments) given the query, key or value by torch's keyword names
    (diffusers' attention dispatch calls ``scaled_dot_product_attention(query=..., key=...,
    value=...)``): which were given so and the model's module that made the call; None for any
    other error."""
    if not isinstance(exc, TypeError):
        return None
    wrapper = frame_locals(exc, module, "newFunc", holding="funcFlopCompute")
    rule = wrapper.get("funcFlopCompute") if wrapper is not None else None
    if getattr(rule, "__name__", "") != "_attn_flops_compute":
        return None
    given = [name for name in ("query", "key", "value") if name in (wrapper.get("kwds") or {})]  # type: ignore[union-attr]
    if not given:
        return None
    return (f"F.scaled_dot_product_attention{_called_in(exc, model)} is given {', '.join(given)} by keyword, "
            "which torch accepts and the counter's attention rule, _attn_flops_compute(q, k, v, ...), does not")


def interpolate_scale_factors(exc: BaseException, module: str, model: nn.Module) -> str | None:
    """For calflops' interpolate rule (``_upsample_flops_compute`` in the Python module named
    ``module``) given ``scale_factor`` as one factor per spatial dimension (Wan's VAE upsamples
    with ``nn.Upsample(scale_factor=(2.0, 2.0))``): the rule takes a tuple as such only when its
    length is ``len(input)``, the batch size, and otherwise raises the tuple to a power
    (``TypeError: unsupported operand type(s) for ** or pow(): 'tuple' and 'int'``). The factors,
    the batch size and the model's module that made the call; None for any other error."""
    if not isinstance(exc, TypeError):
        return None
    rule = frame_locals(exc, module, "_upsample_flops_compute", holding="scale_factor")
    factors = rule.get("scale_factor") if rule is not None else None
    if not isinstance(factors, (tuple, list)):
        return None
    batch = len(rule["input"]) if hasattr(rule.get("input"), "__len__") else "?"  # type: ignore[union-attr]
    return (f"F.interpolate{_called_in(exc, model)} is given scale_factor={tuple(factors)!r}, one factor per "
            f"spatial dimension, which the counter's interpolate rule reads as a tuple only when its length is "
            f"len(input), the batch size ({batch}), and otherwise raises to a power")


def conv_argument_as_list(exc: BaseException, module: str, model: nn.Module) -> str | None:
    """For calflops' and DeepSpeed's convolution rule (``_conv_flops_compute`` in the Python module
    named ``module``) given ``stride``, ``padding`` or ``dilation`` as a list (efficientnet-pytorch's
    ``Conv2dStaticSamePadding`` keeps ``self.stride`` as one, and passes it to ``F.conv2d``): the rule
    takes a tuple or an int (``stride if type(stride) is tuple else (stride,) * n``), so it repeats
    the list and fails on the arithmetic (``TypeError: unsupported operand type(s) for //: 'int' and
    'list'``). Which arguments, and the model's module that made the call; None for any other error."""
    if not isinstance(exc, TypeError):
        return None
    rule = frame_locals(exc, module, "_conv_flops_compute", holding="stride")
    if rule is None:
        return None
    listed = [f"{name}={rule[name]!r}" for name in ("stride", "padding", "dilation") if isinstance(rule.get(name), list)]
    if not listed:
        return None
    return (f"a convolution{_called_in(exc, model)} is given {', '.join(listed)} as a list, which the counter's "
            f"convolution rule takes only as a tuple or an int: it repeats the list once per spatial dimension")


def _held_module(exc: BaseException, model: nn.Module,
                 where: Callable[[FrameType], bool] = lambda frame: True) -> Any:
    """The module of ``model`` held in the variables of the innermost frame of ``exc``'s traceback
    that holds one (among the frames ``where`` accepts); None if none does."""
    modules = {id(m) for m in model.modules()}
    found = None
    for frame, _ in frames_of(exc):
        if where(frame):
            found = next((v for v in frame.f_locals.values() if id(v) in modules), found)
    return found


def _called_in(exc: BaseException, model: nn.Module) -> str:
    """`` in module 'a.b' (Kind)``: the innermost of ``model``'s modules running (as ``self``) when
    ``exc`` was raised; ``""`` where none was."""
    modules = {id(m) for m in model.modules()}
    caller = None
    for frame, _ in frames_of(exc):
        if id(frame.f_locals.get("self")) in modules:
            caller = frame.f_locals["self"]
    return f" in {module_named(model, caller)}" if caller is not None else ""


__all__ = ["conv_argument_as_list", "einsum_operand_list", "failed_assertion", "frame_locals", "frames_of", "grad_in_backward_hint", "interpolate_scale_factors",
           "keyword_only_call_hint", "located_assertions", "meta_trace_refusal",
           "module_named", "named_failure",
           "packed_sequence_hint", "reentrant_checkpoint_hint", "sdpa_keyword_tensors", "traced_branch_failure", "traced_function_hint",
           "torch_or_flopaudit", "traced_argument_types_hint", "traced_constant_hint", "traced_functional_call_hint", "traced_grad_outputs_hint", "traced_size_number_hint", "traced_state_hint", "transform_write_hint", "type_named", "untracked_gradient_hint"]
