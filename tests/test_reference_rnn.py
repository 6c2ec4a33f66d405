"""Reference counter: LSTM / GRU / RNN (multi-layer, bidirectional,
batch_first, proj_size) and their cells.

Per time step, batch element, layer and direction the MACs are the sizes of
the weight matrices: LSTM 4H(I+H), GRU 3H(I+H), RNN H(I+H); a layer above a
bidirectional one has I = 2H. Extra FLOPs per hidden unit and step: LSTM 13
(gates sum 4, 3 sigmoids, 2 tanh, 3 multiplies, 1 add) + 8 for the two bias
vectors, GRU 10 + 6, RNN 2 + 2.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flopaudit.reference import count
from flopaudit.reference.registry import cost_of

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

IN, HID, T, B = 8, 16, 5, 2


def lstm_step(i: int, h: int) -> int:
    return 4 * h * (i + h)


def gru_step(i: int, h: int) -> int:
    return 3 * h * (i + h)


CASES = [
    # id, factory, input shape, expected MACs, expected extra FLOPs
    ("lstm", lambda: nn.LSTM(IN, HID), (T, B, IN), T * B * lstm_step(IN, HID), T * B * (13 + 8) * HID),
    ("lstm_no_bias", lambda: nn.LSTM(IN, HID, bias=False), (T, B, IN), T * B * lstm_step(IN, HID), T * B * 13 * HID),
    ("lstm_2layer_bidir_batch_first", lambda: nn.LSTM(IN, HID, num_layers=2, bidirectional=True, batch_first=True),
     (B, T, IN), T * B * 2 * (lstm_step(IN, HID) + lstm_step(2 * HID, HID)), T * B * 4 * (13 + 8) * HID),
    # projections: w_ih (4H, IN), w_hh (4H, P), w_hr (P, H)
    ("lstm_proj", lambda: nn.LSTM(IN, HID, proj_size=4), (T, B, IN),
     T * B * (4 * HID * IN + 4 * HID * 4 + 4 * HID), None),
    ("gru_2layer_bidir", lambda: nn.GRU(IN, HID, num_layers=2, bidirectional=True), (T, B, IN),
     T * B * 2 * (gru_step(IN, HID) + gru_step(2 * HID, HID)), T * B * 4 * (10 + 6) * HID),
    ("rnn_tanh", lambda: nn.RNN(IN, HID), (T, B, IN), T * B * HID * (IN + HID), T * B * (2 + 2) * HID),
    ("rnn_relu_batch_first", lambda: nn.RNN(IN, HID, nonlinearity="relu", batch_first=True), (B, T, IN),
     T * B * HID * (IN + HID), T * B * (2 + 2) * HID),
    ("lstm_cell", lambda: nn.LSTMCell(IN, HID), (B, IN), B * lstm_step(IN, HID), B * (13 + 8) * HID),
    ("gru_cell", lambda: nn.GRUCell(IN, HID), (B, IN), B * gru_step(IN, HID), B * (10 + 6) * HID),
    ("rnn_cell", lambda: nn.RNNCell(IN, HID), (B, IN), B * HID * (IN + HID), B * (2 + 2) * HID),
]


@pytest.mark.parametrize("build, shape, macs, extra", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_recurrent(build, shape, macs: int, extra: int | None) -> None:
    result = count(build().eval(), torch.randn(*shape))
    assert result.unsupported == {}
    assert result.macs == macs
    if extra is not None:
        assert result.extra_flops == extra


def test_cpu_lstm_is_one_onednn_op_per_layer_and_direction() -> None:
    result = count(nn.LSTM(IN, HID, num_layers=2, bidirectional=True), torch.randn(T, B, IN))
    assert sum(e.op == "aten.mkldnn_rnn_layer.default" for e in result.events) == 2 * 2


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_meta_device_decomposes_but_counts_the_same(kind: str) -> None:
    """On meta the LSTM is decomposed into addmm + pointwise ops: same MACs and extras as oneDNN."""
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
    real = count(cls(IN, HID, num_layers=2, bidirectional=True), torch.randn(T, B, IN))
    with torch.device("meta"):
        meta_model = cls(IN, HID, num_layers=2, bidirectional=True)
    meta = count(meta_model, torch.randn(T, B, IN), device="meta")
    assert (meta.macs, meta.extra_flops) == (real.macs, real.extra_flops)
    assert not any(e.op.startswith("aten.mkldnn_rnn_layer") for e in meta.events)


class CudnnLSTM(nn.Module):
    """One-layer LSTM through ``aten._cudnn_rnn`` (mode 2), runnable on meta."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden

    def forward(self, x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor,
                b_hh: torch.Tensor, h0: torch.Tensor) -> object:
        return torch.ops.aten._cudnn_rnn(x, [w_ih, w_hh, b_ih, b_hh], 4, None, h0, h0, 2, self.hidden, 0, 1,
                                         False, 0.0, False, False, [], None)


def test_cudnn_rnn_on_meta() -> None:
    hidden = 4
    shapes = [(T, B, IN), (4 * hidden, IN), (4 * hidden, hidden), (4 * hidden,), (4 * hidden,), (1, B, hidden)]
    tensors = [torch.empty(*s, device="meta") for s in shapes]
    result = count(CudnnLSTM(hidden), tensors, device="meta")
    assert result.unsupported == {}
    assert result.macs == T * B * lstm_step(IN, hidden)
    assert result.extra_flops == T * B * (13 + 8) * hidden


@pytest.mark.parametrize("op, gates, pointwise", [("_thnn_fused_lstm_cell", 4, 13), ("_thnn_fused_gru_cell", 3, 10)])
def test_fused_cuda_cells_priced_from_shapes(op: str, gates: int, pointwise: int) -> None:
    hidden = 4
    g = torch.empty(B, gates * hidden, device="meta")
    state = torch.empty(B, hidden, device="meta")
    bias = torch.empty(gates * hidden, device="meta")
    cost = cost_of(getattr(torch.ops.aten, op).default, (g, g, state, bias, bias), {}, (state,))
    assert cost is not None
    assert (cost.macs, cost.extra_flops) == (0, pointwise * B * hidden + 2 * B * gates * hidden)


@pytest.mark.filterwarnings("ignore:(?s).*torch.ao.quantization is deprecated", "ignore:torch.quantize_per_tensor")
@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True)])
@pytest.mark.parametrize("packed", [False, True])
def test_dynamically_quantized_rnn_counts_as_its_float_twin(kind: type[nn.RNNBase], layers: int,
                                                           bidirectional: bool, packed: bool) -> None:
    """torch.ao's dynamic quantization packs the weights (no parameter left) and runs the whole
    stack as one aten.quantized_lstm/gru: priced as the float layer it was made from, packed
    sequences (only the real steps) too."""
    torch.manual_seed(0)
    float_model = nn.Sequential(kind(IN, HID, num_layers=layers, bidirectional=bidirectional, batch_first=True))
    quantized = torch.ao.quantization.quantize_dynamic(float_model, {kind}, dtype=torch.qint8)  # a copy
    x = torch.randn(B, T, IN)
    inputs = (nn.utils.rnn.pack_padded_sequence(x, [T, 3], batch_first=True),) if packed else (x,)
    expected, got = count(float_model, inputs), count(quantized, inputs)
    assert [e.op.split(".")[1] for e in got.events if e.macs] == [f"quantized_{kind.__name__.lower()}"]
    assert (got.macs, got.extra_flops) == (expected.macs, expected.extra_flops)
    assert got.params.total == 0 and got.unsupported == {}
