"""TylerYep's ``torch-summary`` (the maintained fork of torchsummary, later torchinfo).

What torch-summary 1.4.5 counts (``torchsummary/torchsummary.py``,
``layer_info.py``, ``model_statistics.py``; verified by probes on torch 2.14):

* It runs the model on the given tensors under ``torch.no_grad()`` in eval
  mode (``model.eval()``, the mode restored after), with a forward pre-hook
  and hook on every module down to ``depth + 1`` (4 with the default
  ``depth=3``), the root only if it has no children (or is an
  ``nn.MultiheadAttention``). One row per call.
* "Total mult-adds": for every row, whatever its depth (containers too), the
  module's ``named_parameters()`` (recursive): a parameter named exactly
  ``weight`` counts ``numel`` (Conv classes: ``numel * prod(output[2:])``,
  the output positions), any other name containing ``weight`` (an RNN's
  ``weight_ih_l0``, a child's ``0.weight``) ``numel``; biases never. It never
  multiplies by the batch: the count is per sample (and a container adds its
  children's weights again).
* "Total params": ``num_params`` (recursive ``named_parameters``) of the
  rows at the deepest shown level (``depth``) or of leaves above it, except
  repeated calls of a module that has parameters ("(recursive)").
* Memory (4 bytes per element): input = the inputs' elements without the
  batch dim, forward/backward = 2 x output elements of leaf rows with
  parameters, params = total params.

torch-summary and sksq96's ``torchsummary`` install the same import package
``torchsummary`` (:mod:`flopaudit.adapters._shared_import`); this backend is
available only when the files on disk are torch-summary's.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from flopaudit.adapters._shared_import import SharedImportBackend
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES
from flopaudit.adapters.torchsummary import DISTRIBUTIONS, SHARED_FILES
from flopaudit.errors import BackendFailure, NotApplicable
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

UNIT_NOTE = "counts Mult-Adds per sample (it never multiplies by the batch): normalised by multiplying by the batch size"

_BYTES_PER_ELEMENT = 4


BACKEND = SharedImportBackend(
    name="torch-summary",
    adapter="TorchSummaryAdapter",
    description=(
        "torch-summary (TylerYep) summary: hooks to depth 4, Mult-Adds from weight counts per sample, params, memory"
    ),
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="torchsummary",
    distribution="torch-summary",
    install="pip install torch-summary==1.4.5",
    ruleset="flopaudit.reference.backend_rulesets.torch_summary",
    unit_note=UNIT_NOTE,
    known_divergences={
        "vmap-ensemble": "torch-summary fails: it moves the model to its device with model.to(device), and the "
        "skeleton vmap runs is on meta (NotImplementedError: Cannot copy out of meta tensor)",
        "transformer-encoder-padding-mask": "torch-summary fails: under no_grad nn.TransformerEncoder packs the "
        "padded batch into a nested tensor and its hooks read the sizes (RuntimeError); a crash is not predicted",
        "dict-io": "torch-summary fails: it takes input_data as tensors or sizes and this model takes a dict "
        "(TypeError); a crash is not predicted",
        "params-lazy": "torch-summary fails: it counts parameters in each pre-hook, before a lazy module has "
        "initialised them (ValueError); a crash is not predicted",
        "lazy-linear": "torch-summary fails: it counts parameters in each pre-hook, before the LazyLinear has "
        "initialised them (ValueError); a crash is not predicted",
        "exported-program": "torch-summary fails: it calls model.eval(), which the module of an exported program "
        "refuses (NotImplementedError: Calling eval() is not supported yet)",
        **dict.fromkeys(SCRIPT_MODULE_CASES, "torch-summary fails: its forward pre-hooks cannot be registered "
                        "on a ScriptModule"),
        "jagged-token-mlp": "torch-summary fails: its rows take the absolute value of a jagged nested tensor's "
        "sizes, and its ragged size is a symbolic int (AttributeError: 'NestedIntNode' object has no attribute 'abs')",
        "kv-cache-decode": "torch-summary fails: inputs that are not all tensors (the cache object) it reads as "
        "input sizes, comparing each with 0 (RuntimeError: Boolean value of Tensor with more than one value is "
        "ambiguous)",
        "roi-align-head": "torch-summary fails: its hooks read a module's first input by index, and "
        "MultiScaleRoIAlign's is a dict of feature maps (KeyError: 0)",
    },
    order=90,
    rivals=DISTRIBUTIONS,
    files=SHARED_FILES,
)

class TorchSummaryAdapter(Adapter):
    """``torchsummary.summary(model, input_data=[tensors], **kwargs)`` of torch-summary 1.4.

    * ``raw_total`` is ``total_mult_adds`` (per sample, weights only);
      ``macs`` is ``raw_total * N`` with ``N`` the batch size of the inputs.
    * ``params`` is ``total_params``; ``extra``: ``params_trainable``,
      ``input_bytes``, ``forward_backward_bytes``, ``params_bytes``,
      ``total_bytes`` (its memory estimate, 4 bytes per element).
    * ``per_module``: each row's mult-adds x ``N`` under the module's dotted
      path (a shared module under its first name), summed into its ancestors
      (a container's own row included).

    Inputs: positional tensors go as ``input_data``, keyword inputs through
    ``**kwargs`` (names that clash with ``summary``'s own parameters are bound
    in a wrapper); a model without a positional input is not applicable
    (torch-summary runs no forward pass without ``input_data``). ``device`` is the model's device (torch-summary's default
    is CUDA when available); ``verbose=0``; other options its defaults.
    """

    backend = BACKEND


    def options(self) -> dict[str, Any]:
        return {"batch_dim": 0, "depth": 3, "device": "the model's device", "verbose": 0,
                "col_names": ("output_size", "num_params", "mult_adds")}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        from torchsummary import summary

        from flopaudit.adapters._binding import FixedKwargs
        from flopaudit.adapters.torchinfo import model_device
        from flopaudit.module_paths import ancestors, first_names

        opts = self.options()
        kwargs = dict(inputs.kwargs)
        target: nn.Module = model
        if set(inspect.signature(summary).parameters) & set(kwargs):
            target, kwargs = FixedKwargs(model, kwargs), {}
        args = list(inputs.args)
        if not args:
            raise NotApplicable("torch-summary's summary(model, input_data, **kwargs) runs the model only with "
                                "positional input_data (an empty one is refused, none runs no forward pass); this "
                                "model takes " + inputs.describe())
        try:
            stats = summary(
                target,
                args[0] if len(args) == 1 else args,
                batch_dim=opts["batch_dim"],
                depth=opts["depth"],
                device=model_device(model, inputs),
                verbose=opts["verbose"],
                col_names=opts["col_names"],
                **kwargs,
            )
        except RuntimeError as exc:
            cause = exc.__cause__ or exc.__context__
            if cause is None or not str(exc).startswith("Failed to run torchsummary"):
                raise
            # torch-summary prints the traceback of what failed and raises this in its place: say what failed.
            raise BackendFailure(f"torch-summary failed to run the model, on {type(cause).__name__}: {cause}") from cause
        batch = inputs.batch_size or 1
        paths = first_names(model)
        per_module: dict[str, int] = {}
        for layer in stats.summary_list:
            path = paths.get(id(layer.module))
            if path is None:
                continue
            for name in ancestors(path):
                per_module[name] = per_module.get(name, 0) + int(layer.macs) * batch
        per_module[""] = int(stats.total_mult_adds) * batch
        return RawCount(
            raw_total=int(stats.total_mult_adds),
            macs=int(stats.total_mult_adds) * batch,
            params=int(stats.total_params),
            per_module=per_module,
            extra={
                "params_trainable": int(stats.trainable_params),
                "input_bytes": int(stats.total_input) * _BYTES_PER_ELEMENT,
                "forward_backward_bytes": int(stats.total_output) * _BYTES_PER_ELEMENT,
                "params_bytes": int(stats.total_params) * _BYTES_PER_ELEMENT,
                "total_bytes": (int(stats.total_input) + int(stats.total_output) + int(stats.total_params))
                * _BYTES_PER_ELEMENT,
            },
        )


__all__ = ["TorchSummaryAdapter", "UNIT_NOTE"]
