"""Hard cases for recurrent layers: LSTM, GRU, RNN and a hand-rolled LSTMCell loop.

Canonical MACs per time step, per sample, per layer and per direction, with
input size I and hidden size H (bias adds and gate nonlinearities excluded):

* LSTM: 4 * H * (I + H) (four gates, each an I->H and an H->H product);
  with ``proj_size`` P: 4 * H * (I + P) + H * P (recurrent input is P wide,
  plus the H->P projection);
* GRU: 3 * H * (I + H);
* RNN (tanh or relu): H * (I + H).

Layer 0 has I = input_size; a later layer has I = H * num_directions (or
P * num_directions with a projection). Multiply by sequence length and batch.
Parameters per layer and direction: gates x H x (I + H) weights + 2 x gates x H biases.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch import nn

from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, randn_inputs

I_, H_ = 8, 16  # input and hidden size of every case


class _OutputOnly(nn.Module):
    """A recurrent layer whose model output is the output sequence only."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


class LSTMCellLoop(nn.Module):
    """An ``nn.LSTMCell`` stepped by a Python loop over a seq-first input."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(I_, H_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[1], H_)
        c = x.new_zeros(x.shape[1], H_)
        for step in x.unbind(0):
            h, c = self.cell(step, (h, c))
        return h


class _LSTMHead(nn.Module):
    """A bidirectional two-layer LSTM and a linear head on its output sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(I_, H_, num_layers=2, bidirectional=True)
        self.head = nn.Linear(2 * H_, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])


def _dynamic_quantized_lstm() -> nn.Module:
    with warnings.catch_warnings():
        # torch 2.14 announces that eager-mode quantization moves to torchao; it still runs, and models ship so
        warnings.filterwarnings("ignore", r"(?s).*(torch\.ao\.quantization is deprecated|quantize_per_tensor)")
        return torch.ao.quantization.quantize_dynamic(_LSTMHead().eval(), {nn.LSTM, nn.Linear}, dtype=torch.qint8)


def _rnn(kind: type[nn.Module], **kwargs: object) -> nn.Module:
    return _OutputOnly(kind(I_, H_, **kwargs))


def cases() -> list[ModelCase]:
    lstm_l0 = 4 * H_ * (I_ + H_)  # one direction of layer 0, one step
    lstm_params_l0 = 4 * H_ * I_ + 4 * H_ * H_ + 2 * 4 * H_
    return [
        hard_case(
            "lstm-1layer",
            functools.partial(_rnn, nn.LSTM),
            randn_inputs((5, 2, I_)),
            {"rnn", "lstm"},
            expected_macs=5 * 2 * lstm_l0,  # seq 5 x batch 2 x 4H(I + H)
            expected_params=lstm_params_l0,
            description="nn.LSTM(8, 16) on a seq-first (5, 2, 8) input",
        ),
        hard_case(
            "lstm-bidir-2layer",
            functools.partial(_rnn, nn.LSTM, num_layers=2, bidirectional=True),
            randn_inputs((5, 2, I_)),
            {"rnn", "lstm", "bidirectional"},
            # seq 5 x batch 2 x (2 directions x 4H(I + H) + 2 directions x 4H(2H + H))
            expected_macs=5 * 2 * (2 * 4 * H_ * (I_ + H_) + 2 * 4 * H_ * (2 * H_ + H_)),
            expected_params=2 * lstm_params_l0 + 2 * (4 * H_ * 2 * H_ + 4 * H_ * H_ + 2 * 4 * H_),
            description="nn.LSTM(8, 16, num_layers=2, bidirectional=True) on a seq-first (5, 2, 8) input; "
            "layer 1 reads both directions (input size 32)",
            default=True,
        ),
        hard_case(
            "lstm-batch-first",
            functools.partial(_rnn, nn.LSTM, batch_first=True),
            randn_inputs((3, 7, I_)),
            {"rnn", "lstm", "batch-first"},
            expected_macs=3 * 7 * lstm_l0,  # batch 3 x seq 7 x 4H(I + H)
            expected_params=lstm_params_l0,
            description="nn.LSTM(8, 16, batch_first=True) on (3, 7, 8): batch 3, sequence 7",
        ),
        hard_case(
            "lstm-proj",
            functools.partial(_rnn, nn.LSTM, proj_size=6),
            randn_inputs((5, 2, I_)),
            {"rnn", "lstm"},
            # seq 5 x batch 2 x (4H(I + P) gates + H*P projection), P = 6
            expected_macs=5 * 2 * (4 * H_ * (I_ + 6) + H_ * 6),
            expected_params=4 * H_ * I_ + 4 * H_ * 6 + 2 * 4 * H_ + 6 * H_,
            description="nn.LSTM(8, 16, proj_size=6) on a seq-first (5, 2, 8) input: recurrent state is 6 wide",
        ),
        hard_case(
            "gru-2layer-batch-first",
            functools.partial(_rnn, nn.GRU, num_layers=2, batch_first=True),
            randn_inputs((3, 7, I_)),
            {"rnn", "gru", "batch-first"},
            # batch 3 x seq 7 x (3H(I + H) + 3H(H + H))
            expected_macs=3 * 7 * (3 * H_ * (I_ + H_) + 3 * H_ * (H_ + H_)),
            expected_params=(3 * H_ * I_ + 3 * H_ * H_ + 2 * 3 * H_) + (3 * H_ * H_ + 3 * H_ * H_ + 2 * 3 * H_),
            description="nn.GRU(8, 16, num_layers=2, batch_first=True) on (3, 7, 8)",
            default=True,
        ),
        hard_case(
            "gru-bidir",
            functools.partial(_rnn, nn.GRU, bidirectional=True),
            randn_inputs((5, 2, I_)),
            {"rnn", "gru", "bidirectional"},
            expected_macs=5 * 2 * 2 * 3 * H_ * (I_ + H_),  # seq x batch x 2 directions x 3H(I + H)
            expected_params=2 * (3 * H_ * I_ + 3 * H_ * H_ + 2 * 3 * H_),
            description="nn.GRU(8, 16, bidirectional=True) on a seq-first (5, 2, 8) input",
        ),
        hard_case(
            "rnn-tanh-2layer",
            functools.partial(_rnn, nn.RNN, num_layers=2),
            randn_inputs((5, 2, I_)),
            {"rnn"},
            expected_macs=5 * 2 * (H_ * (I_ + H_) + H_ * (H_ + H_)),  # seq x batch x (layer 0 + layer 1)
            expected_params=(H_ * I_ + H_ * H_ + 2 * H_) + (H_ * H_ + H_ * H_ + 2 * H_),
            description="nn.RNN(8, 16, num_layers=2) (tanh) on a seq-first (5, 2, 8) input",
        ),
        hard_case(
            "rnn-relu-bidir-batch-first",
            functools.partial(_rnn, nn.RNN, nonlinearity="relu", bidirectional=True, batch_first=True),
            randn_inputs((3, 7, I_)),
            {"rnn", "bidirectional", "batch-first"},
            expected_macs=3 * 7 * 2 * H_ * (I_ + H_),  # batch x seq x 2 directions x H(I + H)
            expected_params=2 * (H_ * I_ + H_ * H_ + 2 * H_),
            description="nn.RNN(8, 16, nonlinearity='relu', bidirectional=True, batch_first=True) on (3, 7, 8)",
        ),
        hard_case(
            "lstmcell-loop",
            LSTMCellLoop,
            randn_inputs((5, 2, I_)),
            {"rnn", "lstm", "reuse"},
            expected_macs=5 * 2 * lstm_l0,  # the cell is called 5 times on batch 2: 4H(I + H) each
            expected_params=lstm_params_l0,
            description="nn.LSTMCell(8, 16) stepped by a Python loop over 5 steps of a (5, 2, 8) input",
        ),
        hard_case(
            "lstm-dynamic-quantized",
            _dynamic_quantized_lstm,
            randn_inputs((5, 2, I_)),
            {"rnn", "lstm", "bidirectional", "quantized"},
            # as lstm-bidir-2layer: seq 5 x batch 2 x (2 x 4H(I + H) + 2 x 4H(2H + H)), then 5 x 2 x 32 x 4
            expected_macs=5 * 2 * (2 * 4 * H_ * (I_ + H_) + 2 * 4 * H_ * (2 * H_ + H_)) + 5 * 2 * 2 * H_ * 4,
            expected_params=0,  # int8 weights packed by fbgemm: no nn.Parameter left
            description="nn.LSTM(8, 16, num_layers=2, bidirectional=True) and a Linear(32, 4) on a seq-first "
            "(5, 2, 8) input after torch.ao.quantization.quantize_dynamic (int8 weights, float activations), "
            "as speech and text models are shipped for CPU: one aten::quantized_lstm and one "
            "quantized::linear_dynamic, whose weights are packed objects, not parameters",
        ),
    ]
