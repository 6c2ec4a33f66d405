"""The ``reference`` backend behind the Adapter interface."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.adapters.reference import ReferenceAdapter, category_facts
from flopaudit.records import Granularity, Status, Unit


class TiedNet(nn.Module):
    """Embedding (20 x 8) tied to the output projection; one 8 -> 8 linear with bias."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.mid = nn.Linear(8, 8)
        self.out = nn.Linear(8, 20, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.mid(self.embed(tokens))))


def test_registered_metadata() -> None:
    adapter = get_adapter("reference")
    assert isinstance(adapter, ReferenceAdapter)
    assert (adapter.name, adapter.distribution, adapter.unit, adapter.granularity) == (
        "reference", "flopaudit", Unit.MAC, Granularity.ATEN_OPS)
    assert adapter.available()


def test_count_result() -> None:
    tokens = torch.tensor([[1, 2, 3], [4, 5, 6]])
    rows = 2 * 3
    result = get_adapter("reference").count(TiedNet(), tokens, model_name="tied")
    assert result.status is Status.OK, result.error
    macs = rows * 8 * 8 + rows * 8 * 20
    assert result.raw_total == result.macs == macs
    assert result.params == 20 * 8 + 8 * 8 + 8  # tied weight once
    assert result.module_macs() == {"": macs, "embed": 0, "mid": rows * 8 * 8, "out": rows * 8 * 20}
    assert result.op_macs()["aten.addmm.default"] == rows * 8 * 8
    assert result.op_macs()["aten.mm.default"] == rows * 8 * 20
    extra = dict(result.extra)
    bias, relu = rows * 8, rows * 8
    assert extra["extra_flops"] == bias + relu
    assert extra["flops"] == 2 * macs + bias + relu
    assert extra["params_trainable"] == 20 * 8 + 8 * 8 + 8
    assert extra["bytes_read"] > 0 and extra["bytes_written"] > 0
    assert result.unsupported == ()
    assert result.side_effects == ()
    assert result.batch_size == 2


class Nms(nn.Module):
    """torchvision's C++ ``nms``: an operator without a formula."""

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torchvision

        return torchvision.ops.nms(boxes, scores, 0.5)


def test_unsupported_ops_are_reported_with_a_warning() -> None:
    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 8.0, 8.0]])
    result = get_adapter("reference").count(Nms(), (boxes, torch.tensor([0.9, 0.8])))
    assert result.status is Status.OK
    assert dict(result.unsupported) == {"torchvision.nms.default": 1}
    assert any("without a formula" in w for w in result.warnings)


@torch.library.custom_op("flopaudit_adapter_test::gemm", mutates_args=())
def gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b


@gemm.register_fake
def _(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.new_empty(a.shape[0], b.shape[1])


class Gemm(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return gemm(a, b)


def test_traced_custom_ops_are_named_in_the_warnings() -> None:
    result = get_adapter("reference").count(Gemm(), (torch.randn(3, 4), torch.randn(4, 5)))
    assert result.macs == 3 * 4 * 5
    assert any("flopaudit_adapter_test.gemm.default x1" in w for w in result.warnings)


def test_category_facts_split_the_canonical_count_by_category() -> None:
    """Conv 3->8 k3 pad 1 on 2x3x8x8 with bias, eval BatchNorm, ReLU, adaptive pool, Linear 8->10 with bias."""
    from tests.conftest import SmallConvNet

    model = SmallConvNet().eval()
    result = get_adapter("reference").count(model, torch.randn(2, 3, 8, 8))
    extra = dict(result.extra)
    out = 2 * 8 * 8 * 8  # conv output elements
    assert extra["macs.conv"] == out * 3 * 9 and extra["extra_flops.conv"] == out  # bias: one add per output
    assert extra["macs.matmul"] == 2 * 8 * 10 and extra["extra_flops.matmul"] == 2 * 10
    assert extra["extra_flops.norm"] == (2 + 2) * out  # running statistics 2 + affine 2 per element
    assert extra["extra_flops.batch_statistics"] == (5 - 2) * out  # what batch statistics would add
    assert sum(v for k, v in extra.items() if k.startswith("macs.")) == result.macs
    assert sum(v for k, v in extra.items() if k.startswith("extra_flops.") and k != "extra_flops.batch_statistics") \
        == extra["extra_flops"]


class _EagerAttention(nn.Module):
    """One head of attention written out as products (as Hugging Face's eager attention and
    timm's unfused path are), then a product of the values with a batched weight and one
    with a fixed bank (a buffer), and a product with a second input (a graph's adjacency)."""

    def __init__(self, e: int = 8) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(e, e), nn.Linear(e, e), nn.Linear(e, e)
        self.stacked = nn.Parameter(torch.randn(1, e, e))
        self.register_buffer("bank", torch.randn(1, e, e))

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        q, k = self.q(x), self.k(x)
        scores = (q @ k.transpose(-2, -1)).softmax(-1)
        weighted = scores @ self.v(x)
        n = x.shape[0]
        return (torch.bmm(weighted, self.stacked.expand(n, -1, -1)) + torch.bmm(weighted, self.bank.expand(n, -1, -1))
                + adjacency @ x + torch.einsum("btc,btc->bt", q, k).unsqueeze(-1))


@pytest.mark.parametrize("pass_", ["inference", "train"])
def test_products_of_two_activations_are_a_fact_of_their_own(pass_: str) -> None:
    """Batch 2, 5 tokens, width 8: scores 2*5*5*8 MACs and weighted values 2*5*5*8 are
    products of two activations; the products with the stacked weight and the bank (2*5*8*8
    each), the one with the adjacency input (2*5*5*8) and the batched dot products of q and k
    (10 of width 8) are not. In a training step only the forward's count."""
    from flopaudit.reference import count
    from flopaudit.reference.operators import BATCHED_PRODUCTS

    model = _EagerAttention()
    x, adjacency = torch.randn(2, 5, 8), torch.randn(2, 5, 5)
    result = count(model, (x, adjacency), pass_=pass_)
    facts = category_facts(result)
    assert facts["activation_product_macs"] == 2 * (2 * 5 * 5 * 8)
    products = [e for e in result.events if e.op in BATCHED_PRODUCTS and e.phase == "forward"]
    assert sorted(e.operands.lower() for e in products) == ["aa", "aa", "aa", "ab", "aw", "xx"]
    # only batched products carry operands in an inference pass
    assert pass_ == "train" or all(not e.operands for e in result.events if e.op not in BATCHED_PRODUCTS)


def _in_a_fresh_process(count_line: str, *setup: str) -> list[str]:
    """What ``count_line`` prints, run after ``setup`` in a new Python process that has not
    imported Dynamo (a user's script)."""
    import subprocess
    import sys

    code = "\n".join(["import sys, torch", "from torch import nn", "from flopaudit.adapters import get_adapter",
                      *setup, "assert 'torch._dynamo' not in sys.modules", count_line, ""])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_code_that_compiles_as_it_runs_is_counted_in_a_fresh_process() -> None:
    """``flex_attention`` compiles its operator call even in eager mode, importing Dynamo as
    it does: in a process that had not imported Dynamo, that compile traced into the
    recorder's dispatch mode and the count failed. Every count now runs with Dynamo imported
    and compiled code run eagerly (:mod:`flopaudit.eager`)."""
    printed = _in_a_fresh_process(
        "r = get_adapter('reference').count(Flex(), torch.randn(1, 2, 8, 4)); print(r.status.value, r.macs, r.error)",
        "from torch.nn.attention.flex_attention import flex_attention",
        "class Flex(nn.Module):\n    def forward(self, q):\n        return flex_attention(q, q, q)")
    assert printed == ["ok", str(2 * 2 * 8 * 8 * 4), "None"], printed


def test_the_reference_adapter_counts_in_a_fresh_process() -> None:
    """In a process that has not imported Dynamo yet (a user's script), the first dispatch
    through a dispatch mode imports it, and Dynamo reads every aten operator's tags: that
    must not happen while operator entry points are patched (it failed every count)."""
    printed = _in_a_fresh_process(
        "r = get_adapter('reference').count(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), torch.randn(1, 3, 8, 8)); "
        "print(r.status.value, r.error, type(torch.ops.aten.conv2d.default).__name__)")
    assert printed == ["ok", "None", "OpOverload"], printed


def test_a_ruleset_that_fails_leaves_the_reference_count_standing(monkeypatch) -> None:
    import flopaudit.reference.backend_rulesets.calflops  # noqa: F401 - registers the counters
    from flopaudit.reference.rulesets import EVENT_COUNTERS

    def broken(event):
        raise ZeroDivisionError("a counter's own bug")

    monkeypatch.setitem(EVENT_COUNTERS, "profiler.linear", broken)
    result = get_adapter("reference").count(TiedNet(), torch.tensor([[1, 2, 3]]), model_name="tied")
    assert result.status is Status.OK, result.error
    predicted = {p.ruleset for p in result.predictions}
    assert "calflops" not in predicted and "thop" in predicted
    assert any(w.startswith("calflops: not predicted: its ruleset failed on this recording (ZeroDivisionError")
               for w in result.warnings), result.warnings
