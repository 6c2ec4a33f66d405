"""Counting on the meta device: building a case there, and which backends may count there.

A model built under ``with torch.device("meta")`` has parameters with
shapes and no storage, so a model bigger than memory can be counted by any
backend whose formulas read shapes only. Which backends give the same count
on meta as on CPU was probed on every hard case plus the default
torchvision models (torch 2.14, thop 0.1.1, ptflops 0.7.5, fvcore 0.1.5,
torchinfo 1.8.0), and for calflops 0.3.2, DeepSpeed 0.19.8, torchprofile 0.1.0,
torch.profiler and pytorch-model-summary 0.1.2 (fvcore again) on the hard cases,
the transformers configs and the light torchvision and timm models: each
backend's descriptor says so (:attr:`flopaudit.adapters.Backend.meta`), and
``tests/test_meta_backends.py`` checks it against the counters.
"""

from __future__ import annotations

import torch
from torch import nn

from flopaudit.adapters import get_backend
from flopaudit.adapters.descriptor import MetaSupport
from flopaudit.errors import UserError, first_line
from flopaudit.inputs import ModelInputs
from flopaudit.reference.meta_workarounds import MetaWorkarounds, mixes_devices, reads_values, run_on_meta
from flopaudit.text import cut_at_word
from flopaudit.zoo.case import ModelCase


def meta_support(backend: str) -> MetaSupport:
    """How ``backend`` fares on the meta device (its descriptor's :attr:`~flopaudit.adapters.Backend.meta`)."""
    return get_backend(backend).meta


def instantiate_on_meta(case: ModelCase) -> tuple[nn.Module, ModelInputs, tuple[str, ...]]:
    """Build ``case`` with every parameter, buffer and input on the meta device
    (:func:`~flopaudit.reference.api.build_on_meta`: under ``torch.device("meta")``, else with
    ``empty_weights()``). Returns the notes of what was done instead, for the results' warnings.
    Where neither way builds it, it is built on the CPU and moved to meta
    (:func:`~flopaudit.reference.api.build_on_cpu_then_meta`), or, where both raised the same error
    and it is not the meta device's, that error is raised (the factory's own); where that fails too,
    :class:`MetaBuildFailure` saying what each way met.
    """
    from flopaudit.reference.api import ON_CPU_THEN_META, MetaBuildError, build_on_cpu_then_meta, build_on_meta

    try:
        (model, inputs), first = build_on_meta(case.instantiate)
    except MetaBuildError as exc:
        under_device, with_empty_weights = exc.failures
        if (type(with_empty_weights) is type(under_device) and str(with_empty_weights) == str(under_device)
                and not any(fault(with_empty_weights) for fault in (mixes_devices, reads_values, shapes_from_values))):
            raise with_empty_weights from None
        try:
            model, inputs = build_on_cpu_then_meta(case.instantiate)
        except Exception as on_cpu:  # noqa: BLE001 - what each way met is the error
            raise MetaBuildFailure(under_device, with_empty_weights, on_cpu) from exc
        return model, inputs.to("meta"), (f"{MetaBuildFailure.ways(under_device, with_empty_weights)}; "
                                          f"{ON_CPU_THEN_META}",)
    if first is None:
        return model, inputs.to("meta"), ()
    said = f"{type(first).__name__}: {first}".strip().splitlines()[0]
    return model, inputs.to("meta"), (f"build under torch.device('meta') failed ({said}); built with empty_weights()",)


def rebuilt_with_empty_weights(case: ModelCase, failure: BaseException) -> tuple[nn.Module, ModelInputs, str] | None:
    """``case`` built again with ``empty_weights()`` alone
    (:func:`~flopaudit.reference.api.build_with_empty_weights`), for a model built under
    ``torch.device("meta")`` whose forward then raised ``failure``, with the note that says so;
    ``None`` where that build raises."""
    from flopaudit.reference.api import build_with_empty_weights

    try:
        model, inputs = build_with_empty_weights(case.instantiate)
    except Exception:  # noqa: BLE001 - the forward's failure is the one to report
        return None
    if isinstance(failure, UserError) and failure.__cause__ is not None:  # (a trial's words for the model's error)
        failure = failure.__cause__
    return model, inputs.to("meta"), (f"its forward failed built under torch.device('meta') ({_briefly(failure)}): its "
                                      "constructor may skip work on meta tensors that its forward needs; built "
                                      "with empty_weights() (parameters and buffers on meta, other tensors where "
                                      "the code makes them), where it runs")


class MetaBuildFailure(Exception):
    """A model that none of :func:`instantiate_on_meta`'s three ways builds: what each met, and where
    in the model's code (a constructor that reads a tensor's value, or that runs the model to measure
    it, as ultralytics' detection models do)."""

    def __init__(self, under_device: BaseException, with_empty_weights: BaseException,
                 on_cpu: BaseException) -> None:
        super().__init__(f"{self.ways(under_device, with_empty_weights)}; on the CPU (its weights not "
                         f"initialised, to be moved to meta), {_build_fault(on_cpu)}")

    @staticmethod
    def ways(under_device: BaseException, with_empty_weights: BaseException) -> str:
        """What the two ways that make no weight on the CPU met."""
        return (f"under torch.device('meta'), {_build_fault(under_device)}; with empty_weights() (parameters and "
                f"buffers on meta, other tensors where the code makes them), {_build_fault(with_empty_weights)}")


def _briefly(exc: BaseException) -> str:
    """``Type: first line of the message``, cut at a word within 160 characters."""
    text = str(exc).strip()
    return cut_at_word(f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": "), 160)


def _build_fault(exc: BaseException) -> str:
    """What a constructor met on meta, in a clause: a value read or a device mix where it is one, and
    where in the model's code (outside torch) it happened."""
    said = _briefly(exc)
    reader, caller = _outside_torch(exc)
    where = f" in {reader}" + (f", called from {caller}" if caller else "") if reader else ""
    if mixes_devices(exc):
        return f"it used a tensor it made on another device with meta tensors ({said}){where}"
    if reads_values(exc) or shapes_from_values(exc):
        return f"it read a tensor's value ({said}){where}"
    return f"it raised {said}{where}"


_VALUE_SHAPED = ("data-independent implementation does not exist",)
"""What torch says when an operator whose output shape depends on tensor values runs on meta tensors
(``torch.nonzero``, which boolean-mask indexing ``x[mask]`` and ``torch.where(cond)`` call)."""
_VALUE_SHAPED_OPS = ("nonzero", "masked_select", "_unique", "unique_dim", "unique_consecutive", "repeat_interleave")
"""Operators whose output shape depends on tensor values; torch names them as ``aten::<op>: attempted to
run this operator with Meta tensors`` where no meta kernel can exist."""


def shapes_from_values(exc: BaseException) -> bool:
    """Whether ``exc`` is an operator whose output's shape depends on tensor values refusing meta tensors."""
    text = str(exc)
    if any(marker in text for marker in _VALUE_SHAPED):
        return True
    head = text.split(": attempted to run this operator with Meta tensors", 1)
    return len(head) == 2 and any(head[0].startswith(f"aten::{op}") for op in _VALUE_SHAPED_OPS)


def meta_workarounds(model: nn.Module, inputs: ModelInputs) -> MetaWorkarounds:
    """For a model on meta: the ways round a failure there its forward needs
    (:func:`~flopaudit.reference.meta_workarounds.run_on_meta`): none if it runs as it is, or if it
    fails whatever is tried (each count then reports its failure). What ``flopaudit.audit()`` asks
    before its counts."""

    def forward(ways: MetaWorkarounds) -> dict[str, int]:
        with torch.no_grad(), ways.applied(model) as asked:
            given = inputs.fresh()
            model(*given.args, **given.kwargs)
        return asked

    try:
        forward(MetaWorkarounds())
    except Exception as exc:  # noqa: BLE001 - a failure is each count's to report
        try:
            return run_on_meta(forward, exc, lambda asked: asked)[1]
        except Exception:  # noqa: BLE001
            return MetaWorkarounds()
    return MetaWorkarounds()


def _outside_torch(exc: BaseException) -> tuple[str, str]:
    """The innermost two frames of ``exc``'s traceback in code outside torch and flopaudit, as
    ``module:function (line n)``: where a value was read, and its caller (a check helper's caller:
    transformers' ``torch_compilable_check`` called from LLaVA's image-token count); ``""`` where
    there is none."""
    from flopaudit.adapters._failures import frames_of, torch_or_flopaudit

    found = [f"{name}:{frame.f_code.co_name} (line {line})" for frame, line in frames_of(exc)
             if not torch_or_flopaudit(name := frame.f_globals.get("__name__", ""))]
    return (found[-1] if found else "", found[-2] if len(found) > 1 else "")


_NO_MASK_PADDING_CHECK = "transformers.modeling_utils:warn_if_padding_and_no_attention_mask "
"""transformers looks for padding tokens in ``input_ids`` when no ``attention_mask`` is given (BERT-style models)."""


def _value_read_advice(reader: str, inputs: str) -> str:
    """What to do about a forward pass that reads a value on meta, by where it read it."""
    if reader.startswith(_NO_MASK_PADDING_CHECK):
        return ("transformers looks for padding tokens in input_ids when no attention_mask is given: give an "
                "attention_mask with the inputs, or count it without --meta")
    if reader.startswith("transformers.masking_utils:"):
        given = "attention_mask=" in inputs
        return ("transformers reads the attention mask (" + ("the one given" if given else "one the model made")
                + ") to see whether it can leave it out: count it without --meta"
                + (", or without the attention_mask input where the model does not then look for padding tokens "
                   "in input_ids (GPT-2 does)" if given else ""))
    return ("count it without --meta, or, where an input's values are what it reads (a mask it checks), without "
            "that input")


def meta_failure(exc: BaseException, inputs: str = "") -> str:
    """Words for a forward pass that failed on the meta device, to follow the model's name
    (``inputs``: how the inputs it was given read, where known), with the line of the model's
    code (or of torch's layers) that raised, where the traceback has one."""
    from flopaudit.adapters.base import raised_in

    first = first_line(exc)
    at = raised_in(exc).strip().removeprefix("(").removesuffix(")")

    def said(limit: int | None = None, located: bool = True) -> str:
        cut = first if limit is None else cut_at_word(first, limit)
        return f"{type(exc).__name__}: {cut}" + (f", {at}" if at and located else "")

    if mixes_devices(exc):
        return (f" makes a tensor on another device during its forward pass and uses it with its meta tensors "
                f"({said()}): a factory without device= (torch.arange, torch.tensor, torch.zeros) makes it on the "
                "CPU; count it without --meta")
    if shapes_from_values(exc):
        return (f" runs an operator whose output's shape depends on tensor values ({said(160)}): boolean-mask "
                "indexing x[mask], torch.nonzero, torch.where(cond), masked_select, unique; tensors on the meta "
                "device have shapes but no values: count it without --meta")
    if reads_values(exc):
        reader, caller = _outside_torch(exc)
        where = f"; read in {reader}" + (f", called from {caller}" if caller else "") if reader else ""
        return (f" reads a tensor's value during its forward pass ({said(located=not reader)}{where}), and tensors on the meta device "
                f"have shapes but no values: {_value_read_advice(reader, inputs)}")
    given = f" with input {inputs}" if inputs else ""
    return (f" failed on the meta device{given}: {said()} (the input, or an operator whose meta kernel refuses what "
            "its CPU kernel takes: run it without --meta to tell)")
