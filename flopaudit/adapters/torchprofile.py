"""torchprofile's ``profile_macs``: MACs per operator of a ``torch.jit`` trace.

What torchprofile 0.1.0 counts (``torchprofile/handlers.py``,
``trace.py``; verified by probes on torch 2.14): the model is traced with
``torch.jit._get_trace_graph`` (autograd on, the model's own mode) and each
node of the graph is priced by its handler; nodes without one are skipped
with a warning. MACs, whole batch:

* ``aten::_convolution``: ``numel(y) * Cin' * K`` where ``Cin'`` is the
  weight's dim 1 when ``y.shape[1] == w.shape[0]`` (a direct convolution:
  ``Cin/g``), else dim 0; bias not counted.
* ``aten::linear`` and ``aten::matmul``: the matmul MACs by the operands'
  ranks (no bias); ``addmm``, ``addmv``, ``bmm``, ``baddbmm``: the product's
  MACs; ``einsum``: the product of all index sizes.
* ``aten::mul`` / ``mul_``: ``numel(y)`` (every elementwise multiplication).
* ``batch_norm``, ``instance_norm``, ``layer_norm``, ``group_norm``:
  ``numel(y)`` with an affine weight, else 0.
* average pools and ``aten::mean``: ``numel(y)``; ``leaky_relu``:
  ``numel(y)``; ``upsample_bilinear2d``: ``4 * numel(y)``; ``grid_sampler``
  4 (bilinear) or 16 (bicubic) per output.
* ``aten::lstm``: ``T * N * dirs * sum over layers of 4H (I_l + H)``;
  ``aten::scaled_dot_product_attention``: ``B * H * Lq * Lk * (D + Dv)``; its
  handler asserts as many key/value heads as query heads, so grouped-query
  attention (``enable_gqa=True``, as transformers runs Llama-3, Qwen, Gemma)
  fails the count (the adapter says which assertion: :mod:`._failures`).
* a long list of ops count 0 on purpose (activations, softmax, max pools,
  adds, views); ``aten::gru``, ``aten::rnn_tanh``... have no handler
  (skipped with a warning, listed here as ``unsupported``).
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flopaudit.adapters._failures import (
    frame_locals,
    located_assertions,
    meta_trace_refusal,
    named_failure,
    traced_branch_failure,
)
from flopaudit.adapters._restore import namespaces_restored
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES, Backend, MetaSupport
from flopaudit.errors import NotApplicable
from flopaudit.records import CONDITIONAL_CAUSE, DECLARED_CAUSE, Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

_NO_HANDLER = re.compile(r'No handlers found: "([^"]+)"')

SIZE_ARITHMETIC = DECLARED_CAUSE + (
    "0-dim aten::mul nodes of the trace, 1 MAC each: Python arithmetic on tensor sizes, which only a trace "
    "records, and products of scalar tensors"
)
"""``extra`` key (a declared cause, :data:`~flopaudit.records.DECLARED_CAUSE`):
MACs of every ``aten::mul`` node whose operands and result are 0-dim, read from
torchprofile's per-node result (the ruleset prices such products 0)."""

INTEGER_PRODUCTS = DECLARED_CAUSE + (
    "aten::mul nodes of the trace with an integer result, 1 MAC per element: index arithmetic, which a trace "
    "can run more often than an eager pass (a cache keyed on sizes misses when sizes are traced tensors)"
)
"""``extra`` key (a declared cause): MACs of every ``aten::mul``/``mul_`` node that is
not 0-dim and whose results are integer or boolean tensors (the ruleset prices such products 0)."""

NUMBER_DIVISIONS = DECLARED_CAUSE + (
    "a Python number divided by a tensor (heatmap_size / box widths) is one aten::div node in the trace, whose "
    "sizes are 0-dim tensors; an eager pass runs it as the tensor's reciprocal times the number, an aten::mul of "
    "1 MAC per element (Tensor.__rtruediv__)"
)
"""``extra`` key (a declared cause, negative): minus the elements of every ``aten::div`` node of the
trace that divides a value that is a Python number in an eager pass (:func:`number_values`: a traced
size, or arithmetic on sizes and constants) by a tensor of one dimension or more."""

SIZE_DERIVED_WORK = CONDITIONAL_CAUSE + (
    "work of the trace computed from tensor sizes and constants alone (a grid, a position table), which an "
    "eager pass took from a cache in the model keyed on sizes: a trace passes sizes as tensors and misses it"
)
"""``extra`` key (a conditional cause, :data:`~flopaudit.records.CONDITIONAL_CAUSE`): MACs of
the nodes of the trace whose inputs depend on no traced input, parameter or buffer, only on sizes
and constants (:func:`size_derived_nodes`), less those already booked under :data:`SIZE_ARITHMETIC`
and :data:`INTEGER_PRODUCTS`. An eager pass may run that work too (then the reference counted it
and it is no cause) or take its result from a cache keyed on sizes (HF RT-DETR's position tables,
YOLO's grids): the trace's sizes are 0-dim tensors, so such a cache always misses there."""

SIZE_QUERIES = frozenset({"aten::size", "aten::sym_size", "aten::dim", "aten::numel", "prim::device", "prim::dtype",
                          "prim::layout"})
"""Trace operators whose result says something of a tensor other than its values."""

_INTEGER_TYPES = frozenset({"long", "int", "short", "char", "byte", "bool", "uint16", "uint32", "uint64"})
"""torchprofile's names (lower-cased ``scalarType()``) of integer and boolean tensor types."""


BACKEND = Backend(
    name="torchprofile",
    adapter="TorchprofileAdapter",
    description="torchprofile profile_macs: torch.jit trace, MAC handlers per traced aten op",
    unit=Unit.MAC,
    granularity=Granularity.JIT_TRACE,
    module="torchprofile",
    distribution="torchprofile",
    install="pip install torchprofile",
    ruleset="flopaudit.reference.backend_rulesets.torchprofile",
    # As fvcore's: the same on meta wherever its trace runs there (probed as fvcore); a trace through a
    # convolution's meta kernel fails, and that count is not applicable (meta_trace_refusal).
    meta=MetaSupport(True),
    known_divergences={
        "skipped-rows-mask": "torchprofile fails: torch.jit.trace records mask.masked_fill(skip, True), a Python bool as "
        "the value, by a schema that torch's alias analysis has none for (RuntimeError: We don't have an op for "
        "aten::masked_fill but it isn't a special case)",
        "forces-from-an-energy": "torchprofile fails: torch.jit.trace through torch.autograd.grad inside the "
        "forward meets the gradient, a tensor that requires grad and is neither an input nor a parameter, which a "
        "trace must hold as a constant (RuntimeError: Cannot insert a Tensor that requires grad as a constant)",
        "batched-grad-jacobian-trace": "torchprofile fails: torch.jit.trace through torch.autograd.grad given "
        "grad_outputs, whose size check a trace cannot run (AssertionError: unexpected sym_eq between Tensor Tensor)",
        "vmap-ensemble": "torchprofile fails: torch.jit.trace under torch.func.functional_call (run by vmap here), "
        "which refuses to run while a trace records (RuntimeError: The stateless API can't be used with Jitted "
        "modules)",
        "jagged-token-mlp": "torchprofile fails: torch.jit.trace of a jagged nested tensor calls aten::size on it, "
        "which it refuses (RuntimeError: NestedTensor does not support directly calling torch.ops.aten.size)",
        "lstm-dynamic-quantized": "torchprofile fails: torch.jit.trace cannot trace aten::quantized_lstm, whose packed weights are TorchScript objects (__torch__.torch.classes.rnn.CellParamsBase), not tensors (RuntimeError: Only tensors ... can be inputs to traced functions)",
        "csr-adjacency": "torchprofile fails: a JIT trace records no shape for a sparse CSR tensor, and "
        "torchprofile's IR takes the length of every input's shape (TypeError: object of type 'NoneType' has no "
        "len())",
        "attention-frozen-fast-path": "torchprofile fails: the frozen nn.MultiheadAttention takes its fused fast "
        "path under the trace, and the node returns an undefined tensor for the weights it was not asked for, "
        "whose type torchprofile's IR reads (AttributeError: 'NoneType' object has no attribute 'lower')",
        "compiled-submodules": "torchprofile fails: torch.jit.trace refuses a module wrapped by torch.compile, even "
        "one running eagerly (RuntimeError: Detected that you are using FX to torch.jit.trace a dynamo-optimized "
        "function)",
        "static-quantized-residual": "torchprofile fails: torch.jit.trace takes every state_dict entry as a graph "
        "input, and the quantized Linear keeps its weights' dtype there (fc._packed_params.dtype, a torch.dtype, "
        "not a tensor: RuntimeError: Only tensors ... can be inputs to traced functions. Got int)",
        **dict.fromkeys(SCRIPT_MODULE_CASES, "torchprofile fails: torch.jit.trace of a model holding a "
                        "ScriptModule that was not traced with it (RuntimeError: ... not part of the active trace)"),
    },
    order=130,
)

class TorchprofileAdapter(Adapter):
    """``profile_macs(model, args, reduction=None)``, summed.

    * ``raw_total`` and ``macs``: the sum of the per-node MACs (the same
      number ``profile_macs`` returns with its default ``reduction=sum``).
    * ``per_op``: MACs by traced operator (``aten::_convolution``...);
      ``unsupported``: operators without a handler, with how many nodes.
    * ``extra[SIZE_ARITHMETIC]``: the MACs of ``aten::mul`` nodes on 0-dim
      tensors, mostly Python arithmetic on sizes that tracing records (``bsz *
      num_heads`` in ``nn.MultiheadAttention``), when there are any;
      ``extra[INTEGER_PRODUCTS]`` those with an integer result;
      ``extra[NUMBER_DIVISIONS]`` (negative) the multiplies an eager pass
      runs for a Python number divided by a tensor, which the trace holds as
      one ``aten::div``;
      ``extra[SIZE_DERIVED_WORK]`` (a conditional cause) the MACs of the other
      nodes computed from sizes and constants alone.
    * ``params``: ``sum(p.numel() for p in model.parameters())`` (torchprofile
      counts none; tied weights once).

    Inputs: torchprofile takes positional tensors only; the model is traced
    through the same binder as fvcore's (tensors positional and keyword as the
    traced inputs, everything else fixed), so keyword inputs work.
    """

    backend = BACKEND


    def options(self) -> dict[str, Any]:
        return {"reduction": "sum over nodes (reduction=None read per node)",
                "inputs": "top-level tensors traced; other inputs fixed as constants"}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        from torchprofile import profile_macs

        from flopaudit.adapters._binding import BoundCall
        from flopaudit.adapters.base import count_params

        bound = BoundCall(model, inputs)
        with warnings.catch_warnings(record=True) as caught, _graphs_kept() as graphs, \
                located_assertions(_node_counted):
            warnings.simplefilter("always")
            try:
                per_node = profile_macs(bound, bound.traced_inputs(), reduction=None)
            except AssertionError:  # (a handler's check: located_assertions says which)
                raise
            except Exception as exc:
                refused = meta_trace_refusal(exc)
                if refused is not None:
                    raise NotApplicable(refused) from exc
                branch = traced_branch_failure(exc, model, inputs)
                if branch is None:
                    raise
                raise named_failure(exc, branch) from exc
        graph = graphs[0] if len(graphs) == 1 else None  # (None: torchprofile traced in a way not known here)
        derived = size_derived_nodes(graph) if graph is not None else None
        number_divisions = -sum(math.prod(n.outputs[0].shape) for n in number_divisions_of(graph)) if graph else 0
        per_op: dict[str, int] = {}
        size_arithmetic = integer_products = size_derived = 0
        for node, macs in per_node.items():
            per_op[node.operator] = per_op.get(node.operator, 0) + int(macs)
            if node.operator in ("aten::mul", "aten::mul_"):
                if all(not v.shape for v in (*node.inputs, *node.outputs)):
                    size_arithmetic += int(macs)
                    continue
                if node.outputs and all(v.dtype in _INTEGER_TYPES for v in node.outputs):
                    integer_products += int(macs)
                    continue
            if derived is not None and id(node) in derived:
                size_derived += int(macs)
        unsupported: dict[str, int] = {}
        messages: list[str] = []
        for w in caught:
            found = _NO_HANDLER.search(str(w.message))
            if found:
                unsupported[found.group(1)] = unsupported.get(found.group(1), 0) + 1
            else:
                messages.append(f"{w.category.__name__}: {w.message}")
        total = sum(int(v) for v in per_node.values())
        return RawCount(
            raw_total=total,
            macs=total,
            params=count_params(model),
            per_op=per_op,
            unsupported=unsupported,
            warnings=messages,
            extra={k: v for k, v in ((SIZE_ARITHMETIC, size_arithmetic), (INTEGER_PRODUCTS, integer_products),
                                     (NUMBER_DIVISIONS, number_divisions), (SIZE_DERIVED_WORK, size_derived)) if v},
        )


def size_derived_nodes(graph: Any) -> set[int]:
    """``id`` of each node of torchprofile's traced ``graph`` whose inputs depend on none of the
    graph's inputs (the traced inputs, parameters and buffers) other than through their sizes,
    device or dtype (:data:`SIZE_QUERIES`): work on sizes and constants alone."""
    data = {id(v) for v in graph.inputs}
    out: set[int] = set()
    for node in graph.nodes:  # (in the order the trace ran them: producers first)
        if node.operator in SIZE_QUERIES:
            continue
        if any(id(v) in data for v in node.inputs):
            data.update(id(v) for v in node.outputs)
        else:
            out.add(id(node))
    return out


#: Trace operators that, on values that are Python numbers in an eager pass, make another such value.
_NUMBER_ARITHMETIC = frozenset({"aten::add", "aten::sub", "aten::mul", "aten::div", "aten::floor_divide",
                                "aten::floordiv", "aten::remainder", "aten::neg", "aten::int", "aten::float"})


def number_values(graph: Any) -> set[int]:
    """``id`` of each value of the traced ``graph`` that is a Python number in an eager pass: a
    size the trace made a 0-dim tensor (``prim::NumToTensor``), and 0-dim arithmetic on such
    values and constants."""
    constants = {id(v) for n in graph.nodes if n.operator == "prim::constant" for v in n.outputs}
    numbers: set[int] = set()
    for node in graph.nodes:
        if node.operator == "prim::numtotensor" or (
                node.operator in _NUMBER_ARITHMETIC and node.inputs and all(not v.shape for v in node.outputs)
                and all(id(v) in numbers or id(v) in constants for v in node.inputs)):
            numbers.update(id(v) for v in node.outputs)
    return numbers


def number_divisions_of(graph: Any) -> list[Any]:
    """The ``aten::div`` nodes of ``graph`` dividing a Python number of an eager pass by a tensor."""
    numbers = number_values(graph)
    return [n for n in graph.nodes if n.operator == "aten::div" and len(n.inputs) >= 2 and id(n.inputs[0]) in numbers
            and n.inputs[1].shape and n.outputs and n.outputs[0].shape]


@contextlib.contextmanager
def _graphs_kept() -> Iterator[list[Any]]:
    """The graphs ``profile_macs`` traces while the block runs (torchprofile 0.1.0 calls
    ``torchprofile.profile.trace``; with another layout nothing is kept)."""
    import torchprofile.profile as profile_module

    graphs: list[Any] = []
    trace = getattr(profile_module, "trace", None)
    if trace is None:
        yield graphs
        return

    def keeping(*args: Any, **kwargs: Any) -> Any:
        graph = trace(*args, **kwargs)
        graphs.append(graph)
        return graph

    with namespaces_restored([profile_module]):
        profile_module.trace = keeping
        yield graphs


def _node_counted(exc: BaseException) -> str | None:
    """The graph node torchprofile's handler was pricing when ``exc`` was raised: its operator, its
    inputs' shapes and its module scope (``q 1x4x8x8, k 1x2x8x8``: grouped-query attention has
    fewer key/value heads than query heads, which its attention handler asserts away; ``baddbmm``'s
    added term broadcast to the product, which its handler unpacks as the product's shape); None if none."""
    from flopaudit.inputs import shape_text

    handler = frame_locals(exc, "torchprofile.handlers", holding="node")
    if handler is None:
        return None
    node = handler["node"]
    shapes = ", ".join(shape_text(v.shape) for v in getattr(node, "inputs", ())
                       if getattr(v, "shape", None) is not None)
    scope = getattr(node, "scope", "")
    operator = getattr(node, "operator", "?")
    text = f"pricing {operator} on inputs of shape {shapes or '-'}" + (f" in {scope}" if scope else "")
    tensors = [v.shape for v in getattr(node, "inputs", ())[:2] if getattr(v, "shape", None)]
    if operator == "aten::scaled_dot_product_attention" and len(tensors) == 2 and len(tensors[0]) == len(
            tensors[1]) >= 3 and math.prod(tensors[0][1:-2]) > math.prod(tensors[1][1:-2]):
        text += " (grouped-query attention: fewer key/value heads than query heads)"
    operands = [tuple(v.shape) for v in getattr(node, "inputs", ())[:3] if getattr(v, "shape", None)]
    if operator == "aten::baddbmm" and len(operands) == 3 and all(len(s) == 3 for s in operands):
        added, left, right = operands
        product = (left[0], left[1], right[2])
        if added != product:
            text += (f" (the added term, {shape_text(added)}, broadcasts to the product's {shape_text(product)}, "
                     "as an ALiBi bias does; the handler takes it to have the product's shape)")
    return text


__all__ = ["INTEGER_PRODUCTS", "NUMBER_DIVISIONS", "SIZE_ARITHMETIC", "SIZE_DERIVED_WORK", "TorchprofileAdapter",
           "number_divisions_of", "number_values", "size_derived_nodes"]
