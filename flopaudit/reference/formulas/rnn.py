"""Recurrent layers as they dispatch.

On CPU with float32, ``nn.LSTM`` runs one ``aten.mkldnn_rnn_layer`` per layer
and direction; ``nn.GRU``/``nn.RNN``, LSTMs with ``proj_size``, other dtypes
and the meta device decompose into ``addmm``/``mm`` and pointwise ops, which
their own formulas count. On CUDA the whole stack is one ``aten._cudnn_rnn``;
``LSTMCell``/``GRUCell`` use ``_thnn_fused_*_cell`` for the pointwise part.

Per time step and batch element, each layer-direction costs:

* MACs: the size of every 2-d weight matrix (``w_ih``: gates*H x input,
  ``w_hh``: gates*H x H (or proj), ``w_hr``: proj x H), i.e. LSTM
  ``4H(I+H)``, GRU ``3H(I+H)``, RNN ``H(I+H)``;
* extra FLOPs: both bias vectors (one add per element) plus the gate
  pointwise work, matching what the decomposed path is charged by the
  elementwise formulas: LSTM 13H (gate sum 4H, 3 sigmoids, 2 tanh, 3
  multiplies, 1 add), GRU 10H, RNN 2H (sum, nonlinearity).

So a CPU LSTM and the same LSTM on the meta device (decomposed) count the same.
"""

from __future__ import annotations

from typing import Sequence

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.registry import Category, Cost, OpCall, numel

#: Pointwise FLOPs per hidden unit per step, by number of gates (4 LSTM, 3 GRU, 1 RNN).
POINTWISE_PER_HIDDEN = {4: 13, 3: 10, 1: 2}

#: cudnn ``mode``: 0 RNN_RELU, 1 RNN_TANH, 2 LSTM, 3 GRU -> number of gates.
_CUDNN_GATES = {0: 1, 1: 1, 2: 4, 3: 3}


def _steps(x: Sequence[int], packed: bool) -> int:
    """Time steps x batch: all leading dims of the input (packed: its first dim)."""
    return int(x[0]) if packed else numel(x[:-1])


def rnn_cost(steps: int, weights: Sequence[Sequence[int] | None], gates: int, hidden: int, layer_dirs: int) -> Cost:
    """MACs/extra of ``steps`` (time x batch) through ``layer_dirs`` layer-directions."""
    mats = [w for w in weights if w is not None and len(w) == 2]
    vecs = [w for w in weights if w is not None and len(w) == 1]
    macs = steps * sum(numel(w) for w in mats)
    extra = steps * (sum(numel(w) for w in vecs) + layer_dirs * POINTWISE_PER_HIDDEN[gates] * hidden)
    return Cost(macs, extra, Category.RNN)


@on("mkldnn_rnn_layer")
def mkldnn_rnn_layer(call: OpCall) -> Cost:
    """One layer, one direction of a oneDNN RNN (CPU LSTM): see the module docstring."""
    x = call.shape("input")
    hidden = int(call["hidden_size"])
    w0 = call.shape("weight0")
    gates = w0[0] // hidden
    weights = [w0, call.shape("weight1")]
    if call.get("has_biases"):
        weights += [call.get("weight2"), call.get("weight3")]
    return rnn_cost(_steps(x, bool(call.get("batch_sizes"))), weights, gates, hidden, 1)


@on("_cudnn_rnn", "miopen_rnn")
def cudnn_rnn(call: OpCall) -> Cost:
    """A whole cuDNN/MIOpen RNN stack (all layers and directions) in one call.

    The weight list holds ``weight_stride0`` tensors per layer-direction; every
    2-d one is a matrix applied at every step.
    """
    x = call.shape("input")
    weights = list(call["weight"])
    stride = int(call.get("weight_stride0") or 1)
    layer_dirs = max(1, len(weights) // stride)
    gates = _CUDNN_GATES.get(int(call["mode"]), 4)
    return rnn_cost(_steps(x, bool(call.get("batch_sizes"))), weights, gates, int(call["hidden_size"]), layer_dirs)


@on("_thnn_fused_lstm_cell", "_thnn_fused_gru_cell")
def fused_cell(call: OpCall) -> Cost:
    """CUDA LSTM/GRU cell pointwise kernel (the gate matmuls ran before, as linears).

    Counted: the gate pointwise work (LSTM 13, GRU 10 FLOPs per hidden
    element) plus one add per gate element for each bias given.
    """
    state = call.shape("cx", "hx")
    gates = 4 if "lstm" in call.op else 3
    bias = numel(call.shape("input_gates")) * sum(call.get(n) is not None for n in ("input_bias", "hidden_bias"))
    return Cost(0, POINTWISE_PER_HIDDEN[gates] * numel(state) + bias, Category.RNN)


@on("quantized_lstm", "quantized_gru")
def quantized_rnn(call: OpCall) -> Cost:
    """A dynamically quantized LSTM/GRU stack (``torch.ao.nn.quantized.dynamic.LSTM``/``GRU``:
    int8 or float16 weights, float activations) in one call: priced as the float stack (see the
    module docstring), every layer and direction.

    # NB: its weights are packed objects a formula cannot read; each layer's matrices are sized
    # from the input's features (the first layer), the hidden state's last dim ``H`` and the
    # directions (``D * H`` features into every later layer). An LSTM with ``proj_size`` is not
    # among them: ``quantize_dynamic`` fails packing its weights (torch 2.14).
    """
    gates = 4 if "lstm" in call.op else 3
    packed = ".data" in call.op
    x = call.shape("data" if packed else "input")
    hidden = int(call.shape("hx")[-1] if gates == 3 else call["hx"][0][-1])  # GRU: h0; LSTM: [h0, c0]
    dirs = 2 if call["bidirectional"] else 1
    layers = int(call["num_layers"])
    biases = bool(call["has_biases"])
    weights: list[tuple[int, ...]] = []
    for layer in range(layers):
        features = int(x[-1]) if layer == 0 else dirs * hidden
        for _ in range(dirs):
            weights += [(gates * hidden, features), (gates * hidden, hidden)]
            if biases:
                weights += [(gates * hidden,), (gates * hidden,)]
    return rnn_cost(_steps(x, packed), weights, gates, hidden, layers * dirs)
