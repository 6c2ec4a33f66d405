"""torchinfo's ``summary``: "Mult-Adds" from module hooks and parameter counts.

What torchinfo 1.8.0 counts (``LayerInfo.calculate_macs``, verified by
probes on torch 2.14). It never looks at the op a module runs: for every
*called* module it multiplies the module's own parameter counts by a slice
of the output shape ``y``:

* parameters named ``weight``/``bias`` of a module whose class name contains
  ``"Conv"`` (ConvNd and ConvTransposeNd): ``params * y.shape[0] *
  prod(y.shape[2:])``, i.e. ``N * (Cout*(Cin/g)*K + Cout) * H_out*W_out``:
  bias included, and for transposed convs the *output* spatial size (about
  stride^d times the real MACs);
* ``weight``/``bias`` of any other module: ``params * y.shape[0]``: Linear
  ``N * (in*out + out)`` (the middle dims of a 3-D input are ignored),
  BatchNorm/GroupNorm ``N * 2C``, LayerNorm ``y.shape[0] * 2E``, Embedding
  ``N * V * E``; modules without parameters (ReLU, GELU, pools, Upsample,
  Softmax) count 0;
* other parameters whose name contains ``weight``/``bias`` (RNN
  ``weight_ih_l0``...): ``params * prod(y.shape[:2])``: LSTM/GRU
  ``T * N * (all weights and biases)``.

The total is the sum over *leaf* modules only: functional ops in a
``forward`` (``torch.matmul``, ``@``, SDPA, elementwise) and the work of a
non-leaf module with its own parameters (``nn.MultiheadAttention``, whose
``out_proj`` child is never called) count 0. Each call of a reused module
counts again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flopaudit.adapters._failures import frame_locals, named_failure
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import Backend, MetaSupport
from flopaudit.errors import BackendFailure
from flopaudit.module_paths import ancestors, first_names
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    import torch
    from torch import nn

    from flopaudit.inputs import ModelInputs

BACKEND = Backend(
    name="torchinfo",
    adapter="TorchinfoAdapter",
    description="torchinfo summary: module hooks, Mult-Adds from parameter counts x output size; functional ops unseen",
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="torchinfo",
    distribution="torchinfo",
    install="pip install torchinfo",
    ruleset="flopaudit.reference.backend_rulesets.torchinfo",
    meta=MetaSupport(True),
    known_divergences={
        "vmap-ensemble": "torchinfo fails: its hooks read each output's .data, which vmap refuses (RuntimeError: "
        "accessing `data` under vmap transform is not allowed)",
        "jagged-token-mlp": "torchinfo fails: it sums a jagged nested tensor's sizes as ints, and its ragged size is "
        "a symbolic int (AttributeError: 'NestedIntNode' object has no attribute 'add')",
        "csr-adjacency": "torchinfo fails: it sums the bytes of every input through its storage, which a "
        "sparse CSR tensor has none of (NotImplementedError: Cannot access storage of SparseCsrTensorImpl)",
        "gcn-sparse-adjacency": "torchinfo fails: it sums the bytes of every input through its storage, "
        "which a sparse tensor has none of (NotImplementedError: Cannot access storage of SparseTensorImpl)",
        "compiled-submodules": "torchinfo fails: it tests a module's truth value, which calls the __len__ a "
        "torch.compile wrapper (OptimizedModule) defines, and that raises for a wrapped module without a length "
        "(TypeError: Linear does not support len())",
        "kv-cache-decode": "torchinfo fails: it sums the bytes of every input, adding an input that is neither a "
        "tensor nor a container (the cache object) as it is (TypeError: unsupported operand type(s) for +: 'int' "
        "and 'KVCache')",
        "transformer-encoder-padding-mask": "torchinfo fails: under no_grad nn.TransformerEncoder packs the padded "
        "batch into a nested tensor and torchinfo's hooks read its .size() (RuntimeError: NestedTensorImpl doesn't "
        "support sizes); a crash is not predicted, the report shows the cell as an error",
        "tensor-sized-padded-conv": "torchinfo fails: its kernel-size column iterates a module's kernel_size "
        "attribute, here a 0-d tensor buffer as in EnCodec (TypeError: iteration over a 0-d tensor)",
    },
    order=50,
)


def _keep_mode(mode: bool = True) -> None:
    """Stand-in for ``Module.train``: torchinfo's mode switches become no-ops."""


def _kernel_size_read(exc: BaseException, model: nn.Module) -> str | None:
    """For torchinfo's kernel-size column failing on a module's ``kernel_size`` attribute (EnCodec's
    and Mimi's padded convolutions keep it as a 0-d tensor buffer, which torchinfo iterates as a
    sequence): which module and what the attribute holds; None for any other error."""
    import torch

    from flopaudit.adapters._failures import frame_locals, module_named, type_named

    local = frame_locals(exc, "torchinfo.layer_info", "get_kernel_size")
    if local is None or "module" not in local:
        return None
    k = local.get("k")
    held = f"a {k.dim()}-d tensor" if isinstance(k, torch.Tensor) else type_named(k)
    return (f"{module_named(model, local['module'])} has a kernel_size attribute holding {held}, which "
            "torchinfo's kernel-size column reads as an int or a sequence of ints")


def _iterable_rebuilt(inputs: ModelInputs) -> str:
    """For an input that is an iterable object of its own class (torch_geometric's ``Data``, which
    iterates as ``(key, value)`` pairs): torchinfo moves inputs to the device by rebuilding every
    iterable as its class called on the list of its items (``traverse_input_data``), so the model
    is given that instead; ``""`` where every input is a tensor, array, mapping, sequence or scalar."""
    import collections.abc

    import numpy as np
    import torch

    plain = (torch.Tensor, np.ndarray, collections.abc.Mapping, list, tuple, str, bytes)
    for index, value in enumerate(inputs.args):
        if isinstance(value, collections.abc.Iterable) and not isinstance(value, plain):
            return (f"; torchinfo moves inputs by rebuilding each iterable as its class called on the list of its "
                    f"items, and input {index} is a {_qualified(value)}, which it rebuilt as {type(value).__name__}([...]) "
                    "for the model")
    return ""


def _taken_for_packed(exc: BaseException, inputs: ModelInputs) -> str:
    """For torchinfo sizing its inputs as a PackedSequence's (``calculate_size``: a first input with a
    ``.data`` that has a ``.size()``) and reading ``.data.element_size()`` of an object that has none
    (tensordict's ``TensorDict``, whose ``.data`` is a TensorDict); ``""`` for any other error."""
    import torch

    if not isinstance(exc, AttributeError) or "element_size" not in str(exc) or not inputs.args:
        return ""
    if frame_locals(exc, "torchinfo.layer_info", "calculate_size") is None:
        return ""
    first = inputs.args[0]
    data = getattr(first, "data", None)
    if data is None or isinstance(data, torch.Tensor):
        return ""
    return (f"; torchinfo takes a first input with a .data that has a .size() for a PackedSequence and reads its "
            f".data.element_size(): input 0 is a {_qualified(first)}, whose .data is a {_qualified(data)}, not a "
            "tensor")


def _qualified(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _nested_size_read(exc: BaseException, model: nn.Module) -> str:
    """For torchinfo's shape columns reading the size of a nested tensor (``torch.nested``: one
    tensor of several shapes, which has none to give: "NestedTensorImpl doesn't support sizes"):
    which module was given or returned it, and where a ``nn.TransformerEncoder`` is in the model,
    that it makes one; ``""`` for any other error."""
    from torch import nn

    from flopaudit.adapters._failures import frame_locals, module_named
    from flopaudit.inputs import iter_tensors

    if "NestedTensorImpl doesn't support sizes" not in str(exc):
        return ""
    hook = frame_locals(exc, "torchinfo.torchinfo", holding="module")
    if hook is None:
        return ""
    nested = any(t.is_nested for t in iter_tensors(hook.get("outputs")))
    said = (f"; {module_named(model, hook['module'])} {'returned' if nested else 'was given'} a nested tensor "
            "(torch.nested: one tensor of several shapes), whose size torchinfo reads for its shape columns")
    if any(isinstance(m, nn.TransformerEncoder) for m in model.modules()):
        said += (" (nn.TransformerEncoder packs a padded batch into one when it is given src_key_padding_mask in "
                 "eval mode without autograd)")
    return said


def model_device(model: nn.Module, inputs: ModelInputs) -> torch.device | None:
    """The one device the model's tensors live on (the inputs' if it has none).

    ``None`` when they span several devices: torchinfo then moves neither
    the model nor the inputs.
    """
    devices = {t.device for t in model.parameters()} | {t.device for t in model.buffers()}
    if not devices:
        devices = {t.device for t in inputs.tensors()}
    return devices.pop() if len(devices) == 1 else None


class TorchinfoAdapter(Adapter):
    """``torchinfo.summary(model, input_data=...)``'s ``total_mult_adds``.

    ``raw_total`` is ``total_mult_adds`` (MACs for the whole batch, the sum
    over leaf layers); ``macs`` is the same number. ``per_module`` sums the
    leaf layers' ``macs`` into each leaf and all of its ancestors, by the
    module's dotted path in the user's model (a shared module under its first
    name), so ``per_module[""] == macs``. ``per_op`` and ``unsupported`` are
    empty: torchinfo has neither. ``params`` is torchinfo's ``total_params``.

    Inputs: positional inputs go as ``input_data`` (a list); keyword inputs,
    whatever their names, are bound in a wrapper module (:class:`FixedKwargs`,
    a container without parameters, so the leaf layers and their Mult-Adds
    are the user's).

    Mode and device: torchinfo 1.8 has no "keep the mode" option (``mode``
    is ``"train"`` or ``"eval"`` and it calls ``model.train()``/``eval()``,
    which would flatten mixed per-module modes), so the adapter passes the
    root's mode and makes those calls no-ops: the model runs in exactly the
    mode it is in. ``device`` is passed explicitly as the model's device, so
    torchinfo does not move it.
    """

    backend = BACKEND

    def options(self) -> dict[str, Any]:
        return {
            "mode": "as is (root's mode passed; torchinfo's train()/eval() calls suppressed)",
            "device": "the model's device",
            "verbose": 0,
            "batch_dim": None,
            "cache_forward_pass": False,
            "depth": 3,
            "col_names": ("mult_adds",),
        }

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        import torchinfo
        import torchinfo.torchinfo as torchinfo_impl

        from flopaudit.adapters._binding import FixedKwargs

        opts = self.options()
        # Keyword inputs are bound in a wrapper: torchinfo passes its own
        # ``**kwargs`` on through ``forward_pass(model, x, batch_dim, ...)``
        # and ``summary(model, input_size, ...)``, so any of those names
        # (``x``, ``model``, ``device``, ``mode``...) would clash.
        target: nn.Module = FixedKwargs(model, inputs.kwargs) if inputs.kwargs else model
        mode = "train" if model.training else "eval"
        target.train = _keep_mode  # type: ignore[method-assign]
        try:
            stats = torchinfo.summary(
                target,
                input_data=list(inputs.args),
                batch_dim=opts["batch_dim"],
                cache_forward_pass=opts["cache_forward_pass"],
                col_names=opts["col_names"],
                depth=opts["depth"],
                device=model_device(model, inputs),
                mode=mode,
                verbose=opts["verbose"],
            )
        except RuntimeError as exc:
            cause = exc.__cause__
            if cause is None or not str(exc).startswith("Failed to run torchinfo"):
                raise
            # torchinfo prints the traceback of what failed and raises this in its place: say what failed.
            raise BackendFailure(f"torchinfo failed to run the model, on {type(cause).__name__}: {cause}"
                                 + _nested_size_read(cause, model) + _iterable_rebuilt(inputs)
                                 + _taken_for_packed(cause, inputs)) from cause
        except TypeError as exc:
            read = _kernel_size_read(exc, model)
            if read is None:
                raise
            raise named_failure(exc, read) from exc
        finally:
            del target.train
        # torchinfo keeps every summary in a module-level cache keyed by class
        # name, even with cache_forward_pass=False; drop ours so the model copy
        # can be freed.
        cache = torchinfo_impl._cached_forward_pass
        key = type(target).__name__
        if cache.get(key) is stats.summary_list:
            del cache[key]

        paths = first_names(model)
        per_module: dict[str, int] = {}
        for layer in stats.summary_list:
            path = paths.get(id(layer.module))
            if path is None or not layer.is_leaf_layer:
                continue
            for name in ancestors(path):
                per_module[name] = per_module.get(name, 0) + int(layer.macs)
        return RawCount(
            raw_total=int(stats.total_mult_adds),
            macs=int(stats.total_mult_adds),
            params=int(stats.total_params),
            per_module=per_module,
        )
