"""sksq96's ``torchsummary.summary``: parameters and a memory estimate, no MACs.

What torchsummary 1.5.1 counts (``torchsummary/torchsummary.py``, verified by
probes on torch 2.14):

* It builds its own inputs, ``torch.rand(2, *size)`` float tensors (a batch
  of two) for the input sizes it is given, and runs the model in the mode it
  is in, with autograd on.
* A forward hook on every module except ``nn.Sequential``, ``nn.ModuleList``
  and the root adds one row *per call*: the module's ``weight`` and ``bias``
  attributes' element counts (whatever they are: a pruned module's computed
  ``weight`` tensor counts, parameters with other names, such as an LSTM's
  ``weight_ih_l0`` or ``nn.MultiheadAttention``'s ``in_proj_weight``, do not).
  So a module called twice is counted twice, a weight tied between two
  modules once per module, a non-leaf module with a ``weight`` once more than
  its children, and uncalled modules not at all. "Trainable params" are the
  rows whose ``weight.requires_grad`` is set.
* Memory (MB, 4 bytes per element, as printed): input size = the input
  sizes' elements x ``batch_size`` (-1 by default, so per sample); the
  forward/backward pass = 2 x the sum of every row's output elements (per
  sample); params = 4 bytes x total params; total = the three summed.

It counts no MACs: its cells read "does not count MACs" and take part in the
parameter and memory comparisons.

torchsummary and TylerYep's ``torch-summary`` install the same import package
``torchsummary`` (:mod:`flopaudit.adapters._shared_import`); this backend is
available only when the files on disk are sksq96's.
"""

from __future__ import annotations

import linecache
from typing import TYPE_CHECKING, Any

from flopaudit.adapters._failures import frame_locals, frames_of, module_named, type_named
from flopaudit.adapters._shared_import import SharedImportBackend
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES, MetaSupport
from flopaudit.errors import BackendFailure, NotApplicable
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

SHARED_FILES = ("torchsummary/__init__.py", "torchsummary/torchsummary.py")
"""Files both distributions install; their hashes say which one is on disk."""
DISTRIBUTIONS = ("torchsummary", "torch-summary")

_MB = 1024**2
_TOTALS = ("total_params", "trainable_params", "total_input_size", "total_output_size", "total_params_size",
           "total_size", "summary")
"""The locals of ``summary`` read once it prints its totals."""


#: Cases where torchsummary itself fails (a crash is not predicted; the report shows an error cell).
_NO_WEIGHT = ("torchsummary fails: no module but the root (which it does not hook) has a weight or bias, so "
              "its total stays the int 0 and total_params.numpy() raises")
_NONE_OUTPUT = "torchsummary fails: a module returns None in a tuple (attention weights) and its hook reads .size()"
_TUPLE_OUTPUT = "torchsummary fails: nn.LSTM returns a nested tuple and its hook reads .size() of the inner tuple"
_REBATCHED = ("torchsummary fails: it builds its own input with a batch of 2 in front of the input size, which "
              "an unbatched input's model cannot take")
KNOWN_FAILURES: dict[str, str] = {
    "linear-2d": _NO_WEIGHT,
    "bilinear": _NO_WEIGHT,
    "linear-3d": _NO_WEIGHT,
    "conv2d-bias": _NO_WEIGHT,
    "conv2d-nobias": _NO_WEIGHT,
    "conv-grouped": _NO_WEIGHT,
    "conv-depthwise": _NO_WEIGHT,
    "conv-dilated": _NO_WEIGHT,
    "conv-strided": _NO_WEIGHT,
    "conv1d": _NO_WEIGHT,
    "conv3d": _NO_WEIGHT,
    "convtranspose-s2": _NO_WEIGHT,
    "convtranspose-grouped-s2": _NO_WEIGHT,
    "mha-batch-first": _NO_WEIGHT,
    "mha-seq-first": _NO_WEIGHT,
    "gru-2layer-batch-first": _NO_WEIGHT,
    "gru-bidir": _NO_WEIGHT,
    "rnn-tanh-2layer": _NO_WEIGHT,
    "rnn-relu-bidir-batch-first": _NO_WEIGHT,
    "lstmcell-loop": _NO_WEIGHT,
    "buffers-only": _NO_WEIGHT,
    "custom-functional-math": _NO_WEIGHT,
    "custom-autograd-function": _NO_WEIGHT,
    "fx-traced-functional": _NO_WEIGHT,
    "quant-dequant-linear": _NO_WEIGHT,
    "sparse-delta-weight": _NO_WEIGHT,
    "vit_b_16": _NONE_OUTPUT,
    "mha-cross-kdim": _NONE_OUTPUT,
    "transformer-encoder-eval": _NONE_OUTPUT,
    "attention-frozen-fast-path": _NONE_OUTPUT,
    "exported-program": "torchsummary fails: the only module an exported graph calls is its guard module "
    "(_guards_fn), which returns None, and its hook reads the output's .size()",
    "lstm-dynamic-quantized": _TUPLE_OUTPUT,
    "lstm-1layer": _TUPLE_OUTPUT,
    "lstm-bidir-2layer": _TUPLE_OUTPUT,
    "lstm-batch-first": _TUPLE_OUTPUT,
    "lstm-proj": _TUPLE_OUTPUT,
    "conv2d-unbatched": _REBATCHED,
    "linear-unbatched": _REBATCHED,
    "static-quantized-residual": "torchsummary fails: a quantized module's weight is a method, not a tensor "
    "with .size(), so no row counts parameters, its total stays the int 0 and total_params.numpy() raises",
    **dict.fromkeys(SCRIPT_MODULE_CASES, "torchsummary fails: its forward hooks cannot be registered on a "
                    "ScriptModule"),
    "roi-align-head": "torchsummary fails: its hook reads .size() of a module's first input, and MultiScaleRoIAlign's "
    "is a dict of feature maps",
    "keypoint-heatmap-targets": "torchsummary fails: its input-size estimate is np.prod of the input sizes, which "
    "here have different ranks ((8, 8, 8), (4,), (3, 3)): numpy refuses the ragged list",
}

BACKEND = SharedImportBackend(
    name="torchsummary",
    adapter="TorchsummaryAdapter",
    description=(
        "torchsummary (sksq96) summary: forward hooks, weight+bias per call and a memory estimate; counts no MACs"
    ),
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="torchsummary",
    distribution="torchsummary",
    install="pip install torchsummary==1.5.1",
    ruleset="flopaudit.reference.backend_rulesets.torchsummary",
    counts_macs=False,
    known_divergences=KNOWN_FAILURES,
    meta=MetaSupport(False, "torchsummary feeds the model its own CPU inputs (torch.rand, device='cpu'): a model "
                     "on the meta device cannot take them"),
    order=80,
    rivals=DISTRIBUTIONS,
    files=SHARED_FILES,
)

class TorchsummaryAdapter(Adapter):
    """``torchsummary.summary(model, input_size, batch_size=-1, device="cpu")``.

    ``macs`` and ``raw_total`` are None (torchsummary counts no operations).
    ``params`` is its "Total params"; ``extra`` holds ``params_trainable``
    ("Trainable params") and its memory estimate in bytes, read exactly from
    the function's own totals (it prints them rounded to 0.01 MB):
    ``input_bytes``, ``forward_backward_bytes``, ``params_bytes``,
    ``total_bytes``, plus ``rows`` (the number of hooked calls). They are
    read from ``summary``'s own variables when it prints them
    (:func:`~flopaudit.adapters._locals.call_reading_locals`).

    Inputs: every positional input must be a floating-point tensor (its shape
    without the batch dim is passed as the input size; torchsummary makes the
    tensors itself); keyword inputs cannot be passed. Otherwise ``not
    applicable``. ``device="cpu"``: torchsummary's default, ``"cuda"``,
    would put its inputs on a GPU whatever device the model is on.
    """

    backend = BACKEND


    def options(self) -> dict[str, Any]:
        return {"batch_size": -1, "device": "cpu", "input_size": "each input's shape without its batch dim"}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        import torch

        from flopaudit.adapters._locals import call_reading_locals

        args = inputs.args
        if inputs.kwargs or not args or not all(
            isinstance(a, torch.Tensor) and a.is_floating_point() and a.dim() > 0 for a in args
        ):
            raise NotApplicable(
                "torchsummary.summary(model, input_size) makes its own float inputs from input sizes and passes "
                "them positionally; this model takes " + inputs.describe()
            )
        layouts = sorted({str(a.layout).removeprefix("torch.") for a in args if a.layout is not torch.strided})
        if layouts:
            raise NotApplicable(f"torchsummary.summary(model, input_size) makes its own dense inputs (torch.rand); "
                                f"this model takes {', '.join(layouts)} ones")
        other = sorted({str(a.dtype).removeprefix("torch.") for a in args if a.dtype != torch.float32})
        if other:
            raise NotApplicable(f"torchsummary.summary(model, input_size) makes its own float32 inputs; this model "
                                f"takes {', '.join(other)} ones")
        from torchsummary import torchsummary as impl

        from flopaudit.draws import reseeded_at_first_call

        sizes = [tuple(int(s) for s in a.shape[1:]) for a in args]
        input_size: Any = sizes[0] if len(sizes) == 1 else sizes
        opts = self.options()
        with torch.random.fork_rng(), reseeded_at_first_call(model):  # its torch.rand inputs draw first
            try:
                _, local = call_reading_locals(impl.summary, impl, _TOTALS, model, input_size,
                                               batch_size=opts["batch_size"], device=opts["device"])
            except ValueError as exc:
                ragged = _ragged_shape(exc) if "inhomogeneous" in str(exc) else None
                if ragged is None:
                    raise
                raise BackendFailure(ragged) from exc
            except IndexError as exc:
                scalar = _scalar_shape(exc, model)
                if scalar is None:
                    raise
                raise BackendFailure(
                    "torchsummary's hook writes the batch size into dim 0 of the shapes of each module's first "
                    "input and output (every module but the root, nn.Sequential and nn.ModuleList): " + scalar
                ) from exc
            except AttributeError as exc:
                unread = _unread_shape(exc, model) if "has no attribute 'size'" in str(exc) else None
                if unread is not None:
                    raise BackendFailure(
                        "torchsummary's hook reads input[0].size() and output.size() (each element's of a tuple "
                        "or list) of every module but the root, nn.Sequential and nn.ModuleList: " + unread
                    ) from exc
                if "'int' object has no attribute 'numpy'" not in str(exc):
                    raise
                raise BackendFailure(
                    "torchsummary saw no call of a module with a weight or bias (it hooks every module but the "
                    "root, nn.Sequential and nn.ModuleList): its total stays the int 0 and total_params.numpy() "
                    f"fails ({exc})"
                ) from exc
        total = int(local["total_params"])
        return RawCount(
            raw_total=None,
            macs=None,
            params=total,
            extra={
                "params_trainable": int(local["trainable_params"]),
                "input_bytes": round(float(local["total_input_size"]) * _MB),
                "forward_backward_bytes": round(float(local["total_output_size"]) * _MB),
                "params_bytes": round(float(local["total_params_size"]) * _MB),
                "total_bytes": round(float(local["total_size"]) * _MB),
                "rows": len(local["summary"]),
            },
        )


def _ragged_shape(exc: BaseException) -> str | None:
    """Which list of shapes torchsummary's totals could not multiply out (``np.prod`` of a ragged
    list): a row's output shapes (a module returning tensors of different ranks) or the input
    sizes (inputs of different ranks); None where its ``summary`` did not raise."""
    line, local = "", None
    for frame, lineno in frames_of(exc):
        if frame.f_code.co_name == "summary" and frame.f_globals.get("__name__") == "torchsummary.torchsummary":
            line, local = linecache.getline(frame.f_code.co_filename, lineno), frame.f_locals
    if local is None:
        return None
    if "output_shape" in line and "layer" in local:
        layer = local["layer"]
        return ("torchsummary multiplies out each row's output shape (np.prod) for its total, and a module "
                f"returning tensors of different ranks makes a ragged one: row {layer} has output shapes "
                f"{local['summary'][layer]['output_shape']}")
    if "input_size" in line:
        return ("torchsummary multiplies out its input sizes (np.prod) for the input size it reports, and inputs "
                f"of different ranks make a ragged list: {local.get('input_size')}")
    return None


def _unread_shape(exc: BaseException, model: nn.Module) -> str | None:
    """Which module's input or output torchsummary's hook could not take a shape of, and what
    it was (from the hook's frame in ``exc``'s traceback); None where the hook is not there."""
    import torch

    hook = frame_locals(exc, "torchsummary.torchsummary", "hook")
    if hook is None or "module" not in hook:
        return None
    inputs, output = hook.get("input") or (None,), hook.get("output")
    if not isinstance(inputs[0], torch.Tensor):
        which, value = "input", inputs[0]
    else:
        which = "output"
        held = output if isinstance(output, (list, tuple)) else (output,)
        value = next((o for o in held if not isinstance(o, torch.Tensor)), output)
    return f"the {which} of {module_named(model, hook['module'])} is or holds {type_named(value)}"


def _scalar_shape(exc: BaseException, model: nn.Module) -> str | None:
    """Which module's first input or output is a 0-dim tensor, whose shape has no dim 0 for
    torchsummary's hook to write the batch size into; None where the hook is not there."""
    import torch

    hook = frame_locals(exc, "torchsummary.torchsummary", "hook")
    if hook is None or "module" not in hook:
        return None
    first, output = (hook.get("input") or (None,))[0], hook.get("output")
    which = "first input" if isinstance(first, torch.Tensor) and first.dim() == 0 else "output"
    if which == "output" and not (isinstance(output, torch.Tensor) and output.dim() == 0):
        return None
    return f"the {which} of {module_named(model, hook['module'])} is a 0-dim tensor"


__all__ = ["DISTRIBUTIONS", "SHARED_FILES", "TorchsummaryAdapter"]
