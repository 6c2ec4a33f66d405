"""torchsummary (sksq96), torch-summary (TylerYep) and pytorch-model-summary: parameters, memory, Mult-Adds.

torchsummary and torch-summary install the same import package; one
environment holds one of them (the project's installs sksq96's), so the
torch-summary tests run where it is installed (``tox -e torch-summary``).
"""

from __future__ import annotations

import pytest
import torch
from conftest import SmallConvNet
from torch import nn

from flopaudit.adapters import get_adapter, get_backend
from flopaudit.adapters._shared_import import owner
from flopaudit.adapters.torchsummary import DISTRIBUTIONS, SHARED_FILES
from flopaudit.records import Status


class Block(nn.Module):
    """Conv2d(3, 8, 3, padding=1) + ReLU, then a Linear(8 * 4 * 4, 10) head; called once each."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU()
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.conv(x)).flatten(1))


def _needs(backend: str) -> None:
    if not get_backend(backend).available():
        pytest.skip(get_backend(backend).missing_reason())


def test_exactly_one_of_the_two_torchsummary_distributions_owns_the_package() -> None:
    installed = owner(DISTRIBUTIONS, SHARED_FILES)
    available = [b for b in ("torchsummary", "torch-summary") if get_backend(b).available()]
    assert available == ([] if installed is None else [{"torchsummary": "torchsummary",
                                                         "torch-summary": "torch-summary"}[installed]])
    for name in ("torchsummary", "torch-summary"):
        backend = get_backend(name)
        if not backend.available():
            assert backend.version() == ""
            assert f"pip install {backend.distribution}" in backend.missing_reason()


# ---------------------------------------------------------------- torchsummary (sksq96)


def test_torchsummary_params_and_memory_by_hand() -> None:
    _needs("torchsummary")
    r = get_adapter("torchsummary").count(Block(), torch.randn(2, 3, 4, 4))
    assert r.status is Status.OK, r.error
    assert r.macs is None and r.raw_total is None  # counts no MACs: not 0
    params = (8 * 27 + 8) + (128 * 10 + 10)
    assert r.params == params
    extra = dict(r.extra)
    assert extra["params_trainable"] == params
    # per sample (batch_size=-1), 4 bytes: input 3x4x4; outputs conv 128 + relu 128 + head 10, x2 for gradients
    assert extra["input_bytes"] == 4 * 48
    assert extra["forward_backward_bytes"] == 2 * 4 * (128 + 128 + 10)
    assert extra["params_bytes"] == 4 * params
    assert extra["total_bytes"] == 4 * 48 + 2 * 4 * 266 + 4 * params
    assert extra["rows"] == 3


def test_torchsummary_counts_per_call_and_only_weight_and_bias() -> None:
    _needs("torchsummary")

    class Reused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.token = nn.Parameter(torch.zeros(4))  # on the root: not hooked

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.fc(x) + self.token)

    r = get_adapter("torchsummary").count(Reused(), torch.randn(2, 4))
    assert r.params == 2 * (16 + 4)  # two calls of fc, two rows; the root's token never


def test_torchsummary_names_the_module_whose_output_has_no_size() -> None:
    """Its hook takes ``output.size()`` (each element's of a tuple): a layer returning
    ``(out, None)`` (Hugging Face's DINOv2 attention) or an int beside a tensor (SegFormer's
    patch embedding returns the height and width) fails there; the error names the layer."""
    _needs("torchsummary")

    class Pair(nn.Module):
        def __init__(self, extra: object) -> None:
            super().__init__()
            self.proj, self.extra = nn.Linear(4, 4), extra

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, object]:
            return self.proj(x), self.extra

    class Model(nn.Module):
        def __init__(self, extra: object) -> None:
            super().__init__()
            self.block = Pair(extra)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(x)[0]

    for extra, named in ((None, "None"), (3, "an int")):
        r = get_adapter("torchsummary").count(Model(extra), torch.randn(2, 4))
        assert r.status is Status.ERROR
        assert f"the output of module 'block' (Pair) is or holds {named}" in (r.error or ""), r.error


def test_torchsummary_names_the_module_with_a_0_dim_input_or_output() -> None:
    """Its hook writes the batch size into dim 0 of each module's first input's and output's shape:
    an ODE function called as ``func(t, y)`` with a 0-dim time (torchdiffeq), or a layer returning
    a scalar, fails there (IndexError); the error names the layer and which of the two it was."""
    _needs("torchsummary")

    class TimeFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4, 4)

        def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.net(y) * t

    class Ode(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.func, self.norm = TimeFirst(), Norm()

        def forward(self, y: torch.Tensor) -> torch.Tensor:
            y = y + 0.1 * self.func(torch.tensor(0.5), y)
            return y / self.norm(y)

    class Norm(nn.Module):
        def forward(self, y: torch.Tensor) -> torch.Tensor:
            return y.norm()

    r = get_adapter("torchsummary").count(Ode(), torch.randn(2, 4))
    assert r.status is Status.ERROR and r.error.startswith("BackendFailure: torchsummary's hook writes the batch")
    assert "the first input of module 'func' (TimeFirst) is a 0-dim tensor" in r.error, r.error

    class ScalarOut(Ode):
        def forward(self, y: torch.Tensor) -> torch.Tensor:
            return y / self.norm(y)

    r = get_adapter("torchsummary").count(ScalarOut(), torch.randn(2, 4))
    assert "the output of module 'norm' (Norm) is a 0-dim tensor" in (r.error or ""), r.error


def test_torchsummary_names_the_row_whose_output_shapes_are_ragged() -> None:
    """Its total multiplies out each row's output shape; a layer returning tensors of different ranks
    (timm's EfficientViM block returns its feature map and a hidden state) makes a ragged list."""
    _needs("torchsummary")

    class TwoRanks(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.proj(x)
            return y, y.unsqueeze(1)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = TwoRanks()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.block(x)[0]

    r = get_adapter("torchsummary").count(Model(), torch.randn(2, 4))
    assert r.status is Status.ERROR
    # torchsummary names rows class-index (the block's hook fires after its Linear's: row 2), batch as -1
    assert "row TwoRanks-2 has output shapes [[-1, 4], [-1, 1, 4]]" in (r.error or ""), r.error

    class TwoInputs(nn.Module):  # inputs of different ranks: its input size total fails the same way
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.proj(x) + y.unsqueeze(1)

    r = get_adapter("torchsummary").count(TwoInputs(), (torch.randn(2, 3, 4), torch.randn(2, 4)))
    assert r.status is Status.ERROR
    assert "inputs of different ranks make a ragged list: [(3, 4), (4,)]" in (r.error or ""), r.error


def test_torchsummary_not_applicable_to_keyword_or_integer_inputs() -> None:
    _needs("torchsummary")
    r = get_adapter("torchsummary").count(nn.Embedding(10, 4), torch.randint(0, 10, (2, 3)))
    assert r.status is Status.NOT_APPLICABLE


def test_torchsummary_not_applicable_to_a_sparse_input() -> None:
    """It would feed torch.rand inputs of the sparse input's shape: a GCN's spmm then fails on them."""
    _needs("torchsummary")

    class GCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
            return torch.spmm(adj, self.w(x))

    adj = torch.eye(5).to_sparse()
    r = get_adapter("torchsummary").count(GCN(), (torch.randn(5, 4), adj))
    assert r.status is Status.NOT_APPLICABLE
    assert "makes its own dense inputs" in r.error and "sparse_coo" in r.error


# ---------------------------------------------------------------- torch-summary (TylerYep)


def test_torch_summary_says_what_failed_when_it_failed_to_run() -> None:
    """torch-summary prints the traceback of a failing forward and raises "Failed to run torchsummary"
    in its place: the error says what failed (here the model's own error; in ``vmap-ensemble`` the
    skeleton on meta that its ``model.to(device)`` cannot copy out)."""
    _needs("torch-summary")

    class Raises(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise ValueError("the model's own failure")

    r = get_adapter("torch-summary").count(Raises(), torch.randn(2, 4))
    assert r.status is Status.ERROR
    assert (r.error or "").startswith(
        "BackendFailure: torch-summary failed to run the model, on ValueError: the model's own failure"), r.error


def test_torch_summary_mult_adds_per_sample_times_batch() -> None:
    _needs("torch-summary")
    r = get_adapter("torch-summary").count(Block(), torch.randn(2, 3, 4, 4))
    assert r.status is Status.OK, r.error
    # per sample: conv weight 216 x 16 output positions; Linear weight 1280; biases never; the root (it has
    # children) is not a row
    per_sample = 216 * 16 + 1280
    assert r.raw_total == per_sample
    assert r.macs == 2 * per_sample
    assert r.params == (216 + 8) + (1280 + 10)


def test_torch_summary_container_adds_its_childrens_weights_again() -> None:
    _needs("torch-summary")
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 6, bias=False)))
    r = get_adapter("torch-summary").count(model, torch.randn(3, 4))
    # rows: inner Sequential (named_parameters '0.weight': 24) and the Linear ('weight': 24); the root has children
    assert r.raw_total == 24 + 24
    assert r.macs == 3 * 48


def test_torch_summary_does_not_apply_to_keyword_only_inputs() -> None:
    """Without positional input_data torch-summary runs no forward pass (an empty one it refuses)."""
    _needs("torch-summary")
    from flopaudit.inputs import ModelInputs

    class Keyword(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, *, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    r = get_adapter("torch-summary").count(Keyword(), ModelInputs((), {"x": torch.randn(3, 4)}))
    assert r.status is Status.NOT_APPLICABLE and "positional input_data" in r.error


# ---------------------------------------------------------------- pytorch-model-summary


def test_pytorch_model_summary_params_by_hand() -> None:
    _needs("pytorch-model-summary")
    r = get_adapter("pytorch-model-summary").count(SmallConvNet(), torch.randn(2, 3, 8, 8))
    assert r.status is Status.OK, r.error
    assert r.macs is None
    assert r.params == (8 * 27 + 8) + 16 + 90
    assert dict(r.extra) == {"params_trainable": (8 * 27 + 8) + 16 + 90, "rows": 5}


def test_pytorch_model_summary_skips_root_parameters_and_counts_ties_per_module() -> None:
    _needs("pytorch-model-summary")

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(4, 4, bias=False)
            self.b = nn.Linear(4, 4, bias=False)
            self.b.weight = self.a.weight
            self.scale = nn.Parameter(torch.ones(4))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)) * self.scale

    r = get_adapter("pytorch-model-summary").count(Tied(), torch.randn(2, 4))
    assert r.params == 16 + 16  # the tied weight in each shown module, the root's scale never


@pytest.mark.parametrize("show_input", [False, True])
def test_pytorch_model_summary_show_input_is_recorded(show_input: bool) -> None:
    _needs("pytorch-model-summary")
    from flopaudit.adapters.pytorch_model_summary import PytorchModelSummaryAdapter

    r = PytorchModelSummaryAdapter(show_input=show_input).count(SmallConvNet(), torch.randn(1, 3, 8, 8))
    assert dict(r.options)["show_input"] == repr(show_input)
    assert r.params == (8 * 27 + 8) + 16 + 90


def test_pytorch_model_summary_names_the_module_whose_output_it_refused() -> None:
    """Its hook takes tensors, tuples and lists only ("Object not supported"): the error says
    which shown module gave what (a Hugging Face model's ``BaseModelOutputWithPast``, here a dict;
    ``nn.MultiheadAttention``'s ``None`` weights)."""
    _needs("pytorch-model-summary")

    class DictOut(nn.Module):
        def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"hidden": x * 2}

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.head = DictOut(), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x)["hidden"])

    r = get_adapter("pytorch-model-summary").count(Model(), torch.randn(2, 4))
    assert r.status is Status.ERROR
    assert "the output of module 'body' (DictOut) is or holds a dict" in (r.error or "")

    class Attends(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(4, 2, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.attn(x, x, x, need_weights=False)[0]

    r = get_adapter("pytorch-model-summary").count(Attends(), torch.randn(1, 3, 4))
    assert "the output of module 'attn' (MultiheadAttention) is or holds None" in (r.error or "")


@pytest.mark.parametrize("backend", ["torchsummary", "torchstat"])
def test_backends_that_make_float32_inputs_do_not_apply_to_a_bfloat16_model(backend: str) -> None:
    """torchsummary and torchstat build their own float32 inputs from sizes: a bfloat16 model would fail in its
    own first layer, which reads like the model's fault; the cell says why instead."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).to(torch.bfloat16)
    r = get_adapter(backend).count(model, torch.randn(1, 3, 8, 8, dtype=torch.bfloat16))
    assert r.status is Status.NOT_APPLICABLE
    assert "float32" in (r.error or "") and "bfloat16" in (r.error or "")
