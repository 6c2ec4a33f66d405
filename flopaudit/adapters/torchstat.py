"""torchstat's ``stat(model, (C, H, W))``: MAdd, Flops, memory read/write per leaf module.

What torchstat 0.0.7 counts (``torchstat/model_hook.py``, ``compute_madd.py``,
``compute_flops.py``, ``compute_memory.py``; verified by probes on torch 2.14):

* It runs the model once on ``torch.rand(1, C, H, W)`` (a batch of one, its
  own random input) in eval mode with autograd on, after replacing the
  ``__call__`` of every *leaf* module class with a wrapper that stores the
  call's shapes and counts in buffers registered on the module. A module
  called twice keeps its last call only; a leaf that is never called counts 0;
  the total is the sum over the leaves of ``named_modules()`` (a module shared
  by two parents once). Work outside leaf modules (functional ops, a
  non-leaf module's own ``forward``) is not seen.
* Two operation counts per leaf, by ``isinstance``:

  - ``Flops``: Conv2d ``N * H_out * W_out * Cout * (Cin/g) * K`` plus ``N *
    H_out * W_out * Cout`` with a bias, i.e. one per multiply-accumulate, bias
    added; Linear (2-D input only) ``N * in * out``, no bias; BatchNorm2d
    ``numel(x)`` (``2 * numel(x)`` with affine); ReLU/ReLU6/PReLU/ELU/LeakyReLU
    ``numel(x)``; MaxPool2d/AvgPool2d ``numel(x)``; Upsample ``N * H_out *
    W_out`` (the channels are missed); everything else 0.
  - ``MAdd`` (multiplications and additions counted apart, per sample):
    Conv2d ``(2 * (Cin/g) * K - 1 + bias) * Cout * H_out * W_out``
    (ConvTranspose2d by *input* size), Linear ``out * (2 * in - 1)``,
    BatchNorm2d ``4 * C * H * W``, pools ``(K - 1)`` or ``K`` per output,
    ReLU ``numel``, Softmax ``3 * numel - 1``.

* Memory: bytes read and written per leaf, ``itemsize x`` elements: input
  plus *trainable* parameters read, output written (Conv2d, BatchNorm2d,
  Linear, ReLU family, pools); 0 for other leaves.
* Parameters: each leaf's own ``_parameters`` (frozen ones included), summed
  over leaves; parameters held by non-leaf modules (``nn.MultiheadAttention``'s
  ``in_proj_weight``, a class token on the root) are not counted, a weight
  tied between two leaves is counted in each.

Inputs: ``ModelStat`` asserts an input size of exactly three numbers, so the
model must take one positional image tensor ``(N, C, H, W)``; anything else is
``not applicable``. torchstat's ``Linear`` rules assert a 2-D input and its
hooks read ``output.size()``, so models with 3-D linear inputs or tuple
outputs in a leaf fail inside torchstat (status ``error``).

torchstat 0.0.7's ``stat()`` prints a pandas report built with
``DataFrame.append``, which pandas 2.0 removed; on pandas 2 it fails after the
counting. The adapter therefore calls what ``stat()`` calls before printing
(``ModelStat(model, input_size)._analyze_model()``) and totals the columns the
way torchstat's ``report_format`` does (sum over the collected leaf nodes).
torchstat leaves its class-level ``__call__`` wrappers installed; the adapter
puts every class's own ``__call__`` back afterwards.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import TYPE_CHECKING, Any

from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import Backend, MetaSupport
from flopaudit.errors import NotApplicable
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

_NOT_SUPPORTED = re.compile(r"\[(MAdd|Flops|Memory)\]: (\S+) is not supported!")

#: What the adapter normalises, said once (adapter docstring and the reports' unit notes).
UNIT_NOTE = (
    "counts a batch of one (its own random input): normalised by multiplying by the batch size; its 'Flops' "
    "column counts one per multiply-accumulate and is the MAC count; 'MAdd' (multiplications and additions "
    "apart) is kept as extra 'madd'"
)


BACKEND = Backend(
    name="torchstat",
    adapter="TorchstatAdapter",
    description=(
        "torchstat stat(): leaf-module call wrappers on a batch of one; Flops (MACs + bias), MAdd, memory"
    ),
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="torchstat",
    distribution="torchstat",
    install="pip install torchstat",
    ruleset="flopaudit.reference.backend_rulesets.torchstat",
    unit_note=UNIT_NOTE,
    known_divergences={
        "scripted-convnet": "torchstat fails: it registers input_shape/output_shape buffers on every module, which a "
        "ScriptModule refuses (RuntimeError: Can't add a new parameter after ScriptModule construction)",
        "exported-program": "torchstat fails: an exported graph's leaves are plain nn.Module objects, so it patches "
        "nn.Module.__call__ itself; the GraphModule (a subclass, with submodules) inherits the wrapper, which "
        "asserts the class is one it patched (AssertionError in wrap_call)",
        "static-quantized-residual": "torchstat fails: its hooks read each module's output with .numpy(), which "
        "a quantized (QUInt8) tensor refuses (TypeError: Got unsupported ScalarType QUInt8)",
        "convnext_tiny": "torchstat fails: its Linear rules assert a 2-D input and convnext's MLP Linears get 4-D "
        "ones; a crash is not predicted, the report shows the cell as an error",
        "vit_b_16": "torchstat fails: its Linear rules assert a 2-D input and the encoder's MLP Linears get 3-D ones; "
        "a crash is not predicted",
        "swin_t": "torchstat fails: its Linear rules assert a 2-D input and Swin's Linears get 4-D ones; a crash is "
        "not predicted",
    },
    meta=MetaSupport(False, "torchstat feeds the model its own CPU input (torch.rand) and reads inputs with "
                     ".numpy(): a model on the meta device cannot run"),
    order=70,
)

class TorchstatAdapter(Adapter):
    """torchstat's analysis of one ``(C, H, W)`` input, totalled as its report does.

    * ``raw_total`` is torchstat's total ``Flops`` (per sample: it runs a
      batch of one); ``macs`` is ``raw_total * N`` with ``N`` the batch size
      of the user's input. torchstat's ``Flops`` counts one per
      multiply-accumulate (plus the conv bias and per-element counts for
      norms, activations, pools); its ``MAdd`` column counts multiplications
      and additions apart, about twice as much, and is not the MAC count.
    * ``extra``: ``madd`` (total MAdd), ``memory_read_bytes``,
      ``memory_write_bytes`` (torchstat's MemRead/MemWrite summed over the
      leaves; its printed "total" row shows the last leaf's values, its
      "MemR+W" total the sum) and ``inference_memory_kib`` (torchstat's
      ``memory(MB)``: output elements x 4 bytes, summed), all per sample as
      torchstat reports them.
    * ``per_module``: each leaf's ``Flops * N`` under its dotted path, summed
      into its ancestors; ``""`` is the total.
    * ``params``: torchstat's ``params`` column summed over leaves.
    * ``unsupported``: leaf classes torchstat has no ``Flops`` rule for, with
      how many leaves of each (from its "[Flops]: X is not supported!" lines).
    """

    backend = BACKEND


    def options(self) -> dict[str, Any]:
        return {
            "input_size": "the input's shape without its batch dim (torchstat runs torch.rand(1, C, H, W))",
            "query_granularity": 1,
            "report": "ModelStat._analyze_model() totalled as report_format (stat()'s report needs pandas < 2)",
        }

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        import torch

        from flopaudit.adapters._failures import located_assertions, named_failure
        from flopaudit.adapters._restore import call_methods_restored
        from flopaudit.module_paths import ancestors

        x = inputs.single_tensor
        if x is None or x.dim() != 4 or not x.is_floating_point():
            raise NotApplicable(
                "torchstat.stat(model, (C, H, W)) feeds one random float image batch of one; this model takes "
                + inputs.describe()
            )
        if x.dtype != torch.float32:
            raise NotApplicable(f"torchstat.stat(model, (C, H, W)) feeds a float32 image; this model takes "
                                f"{str(x.dtype).removeprefix('torch.')} ones")
        from torchstat import ModelStat

        from flopaudit.draws import reseeded_at_first_call

        input_size = tuple(int(s) for s in x.shape[1:])
        batch = int(x.shape[0])
        printed = io.StringIO()
        classes = {type(m) for m in model.modules()}
        with call_methods_restored(classes), contextlib.redirect_stdout(printed), torch.random.fork_rng(), \
                reseeded_at_first_call(model):  # its torch.rand input draws first
            with located_assertions(lambda exc: _layer_counted(exc, model)):
                try:
                    nodes = ModelStat(model, input_size, query_granularity=1)._analyze_model()
                except (AttributeError, TypeError) as exc:
                    called = _module_called(exc, model)
                    if called is None:
                        raise
                    raise named_failure(exc, called) from exc
        paths = {n for n, _ in model.named_modules()}
        flops = madd = params = read = write = 0
        memory_mb = 0.0
        per_module: dict[str, int] = {}
        for node in nodes:
            node_flops = int(node.Flops)
            flops += node_flops
            madd += int(node.MAdd)
            params += int(node.parameter_quantity)
            memory_mb += float(node.inference_memory)
            mem = node.Memory
            read += int(mem[0])
            write += int(mem[1])
            if node.name in paths:
                for name in ancestors(node.name):
                    per_module[name] = per_module.get(name, 0) + node_flops * batch
        per_module.setdefault("", flops * batch)
        unsupported: dict[str, int] = {}
        for kind, cls in _NOT_SUPPORTED.findall(printed.getvalue()):
            if kind == "Flops":
                unsupported[cls] = unsupported.get(cls, 0) + 1
        return RawCount(
            raw_total=flops,
            macs=flops * batch,
            params=params,
            per_module=per_module,
            unsupported=unsupported,
            extra={
                "madd": madd,
                "memory_read_bytes": read,
                "memory_write_bytes": write,
                "inference_memory_kib": round(memory_mb * 1024),
            },
        )


def _layer_counted(exc: BaseException, model: nn.Module) -> str | None:
    """The layer torchstat's per-layer formulas (``compute_madd``, ``compute_flops``, ``compute_memory``)
    were counting when ``exc`` was raised, and its input's shape; None if none was."""
    from flopaudit.adapters._failures import frame_locals, module_named
    from flopaudit.inputs import shape_text

    for where in ("compute_madd", "compute_flops", "compute_memory"):
        local = frame_locals(exc, f"torchstat.{where}", where)
        if local is not None and "module" in local:
            inp = local.get("inp")
            shape = f" on an input of shape {shape_text(inp.shape)}" if hasattr(inp, "shape") else ""
            return f"counting {module_named(model, local['module'])}{shape}"
    return _module_called(exc, model)


def _module_called(exc: BaseException, model: nn.Module) -> str | None:
    """The module whose call torchstat's class-level wrapper (``wrap_call``) failed in, and why
    it could: a class it did not wrap that inherits a wrapped class's ``__call__``, or a first
    input that is not a tensor (it reads ``input[0].detach()``); None if the wrapper is not there."""
    import torch

    from flopaudit.adapters._failures import frame_locals, module_named, type_named

    local = frame_locals(exc, "torchstat.model_hook", "wrap_call")
    if local is None or "module" not in local:
        return None
    module = local["module"]
    wrapped = getattr(local.get("self"), "_origin_call", None) or {}
    named = module_named(model, module)
    if type(module) not in wrapped:
        base = next((c for c in type(module).__mro__[1:] if c in wrapped), None)
        return (f"calling {named}: torchstat wraps __call__ on the class of each module without submodules, "
                f"{base.__name__ if base is not None else 'a base class'} here, and this module's class inherits "
                "that wrapper without being wrapped itself (it has submodules)")
    given = local.get("input") or ()
    first = given[0] if given else None
    if isinstance(first, torch.Tensor):
        return f"calling {named}"
    given_text = type_named(first) if given else "missing"
    return f"calling {named}, whose first input is {given_text} (torchstat reads input[0] as a tensor)"


__all__ = ["TorchstatAdapter", "UNIT_NOTE"]
