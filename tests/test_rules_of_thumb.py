"""The rules of thumb against a GPT-2-small training step, by hand.

GPT-2 small (Hugging Face's default ``GPT2Config``): ``n = 12`` layers, width
``d = 768``, ``h = 12`` heads of ``k = 64``, feed-forward ``f = 3072``,
vocabulary ``V = 50257``, 1024 positions; one sequence of ``L = 32`` tokens,
dropout off (so SDPA takes the CPU flash kernel, whose backward recomputes
the scores).

The reference's MACs, product by product (autograd computes both gradients
of every product: the first projection's input, the embeddings' sum, needs a
gradient because the embeddings are trained):

* forward ``F = n (L d 3d + 2 L L d + L d d + 2 L d f) + L d V``
  (q/k/v projection, the two attention products, output projection, the
  two feed-forward matrices; the output layer tied to the token embedding);
* backward ``2 F + n L L d``: two products per product, and the flash
  kernel's five products of ``L L k`` per head where the forward has two.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from flopaudit.adapters import get_adapter
from flopaudit.inputs import ModelInputs
from flopaudit.passes import Pass
from flopaudit.reference import count
from flopaudit.reference.backend_rulesets import rules_of_thumb as causes
from flopaudit.rules_of_thumb import ChinchillaDims, chinchilla_forward_terms

transformers = pytest.importorskip("transformers")

n, d, h, f, V, L = 12, 768, 12, 3072, 50257, 32
F = n * (L * d * 3 * d + 2 * L * L * d + L * d * d + 2 * L * d * f) + L * d * V
BACKWARD = 2 * F + n * L * L * d
# GPT-2 small's parameters that nn.Embedding does not hold (wte and wpe; the output layer is tied to wte):
# per layer q/k/v 768*2304 + 2304, output projection 768*768 + 768, feed-forward 768*3072 + 3072 and
# 3072*768 + 768, two LayerNorms 2*2*768; then the final LayerNorm 2*768
N = n * (d * 3 * d + 3 * d + d * d + d + d * f + f + f * d + d + 4 * d) + 2 * d
STEP = Pass("train")


@pytest.fixture(scope="module")
def gpt2() -> tuple[object, ModelInputs]:
    config = transformers.GPT2Config(use_cache=False, attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = transformers.GPT2LMHeadModel(config).train()
    return model, ModelInputs((), {"input_ids": torch.randint(0, V, (1, L))})


@pytest.fixture(scope="module")
def reference(gpt2: tuple[object, ModelInputs]):  # noqa: ANN201
    model, inputs = gpt2
    return get_adapter("reference").count(model, inputs, pass_=STEP, model_name="gpt2-small")


def _cause(prediction, reason: str) -> int:  # noqa: ANN001
    return sum(c.macs for c in prediction.contributions if c.rule == reason)


def test_the_reference_counts_the_step_by_hand(reference) -> None:  # noqa: ANN001
    assert reference.ok, reference.error
    phases = {p.phase: p.macs for p in reference.phases}
    assert phases == {"forward": F, "loss": 0, "backward": BACKWARD}
    assert N == 85_056_000  # the Hugging Face figure: 124,439,808 - 50257*768 - 1024*768


def test_chinchilla_closed_form(gpt2, reference) -> None:  # noqa: ANN001
    model, inputs = gpt2
    # appendix F per sequence, in FLOPs: embeddings 2LVd; per layer kqv 2*3*L*d*(kh), logits 2LL(kh),
    # softmax 3hLL, weighted values 2LL(kh), projection 2L(kh)d, dense 2L(df + df); final logits 2LdV
    kh = d
    forward_flops = 2 * L * V * d + n * (2 * 3 * L * d * kh + 2 * L * L * kh + 3 * h * L * L + 2 * L * L * kh
                                         + 2 * L * kh * d + 2 * L * (d * f + d * f)) + 2 * L * d * V
    assert sum(chinchilla_forward_terms(ChinchillaDims(n, d, h, 64, f, V), L).values()) == forward_flops
    result = get_adapter("rule-chinchilla").count(model, inputs, pass_=STEP)
    assert result.ok, result.error
    assert result.raw_total == 3 * forward_flops and result.macs == 3 * forward_flops // 2
    prediction = reference.prediction("rule-chinchilla")
    assert prediction is not None and prediction.macs == result.macs
    # rule - reference: the embedding as a one-hot product (3 LVd), the softmax at 3 FLOPs per logit
    # (3 * 3hLL / 2 per layer), and the flash backward's extra L*L*k products per head (-nLLd)
    assert _cause(prediction, causes.EMBEDDING_MATMUL) == 3 * L * V * d
    assert _cause(prediction, causes.SOFTMAX) == 3 * n * 3 * h * L * L // 2
    assert _cause(prediction, causes.ATTENTION_BACKWARD) == -n * L * L * d
    assert len(prediction.contributions) == 3
    assert prediction.macs - reference.macs == 3 * L * V * d + 9 * n * h * L * L // 2 - n * L * L * d
    layers = dict(next(c for c in prediction.contributions if c.rule == causes.EMBEDDING_MATMUL).layers)
    assert layers == {"transformer.wte": 3 * L * V * d}  # the token embedding, not the positions'


def test_six_n_d(gpt2, reference) -> None:  # noqa: ANN001
    model, inputs = gpt2
    result = get_adapter("rule-6nd").count(model, inputs, pass_=STEP)
    assert result.ok, result.error
    assert result.raw_total == 6 * N * L and result.macs == 3 * N * L
    assert dict(result.extra) == {"params_non_embedding": N, "tokens": L}
    prediction = reference.prediction("rule-6nd")
    assert prediction is not None and prediction.macs == result.macs
    # 6ND prices each non-embedding parameter 3 MACs per token: no attention products (-3 * 2nLLd),
    # no output layer (tied to the embedding, -3 LdV), biases (per layer 3d + d + f + d per token) and
    # LayerNorm weights and biases (per layer 4d, then 2d) at the price of a weight
    assert _cause(prediction, causes.ATTENTION_PRODUCTS) == -3 * 2 * n * L * L * d
    assert _cause(prediction, causes.TIED_OUTPUT) == -3 * L * d * V
    assert _cause(prediction, causes.BIASES) == 3 * L * n * (3 * d + d + f + d)
    assert _cause(prediction, causes.NORMS) == 3 * L * (n * 4 * d + 2 * d)
    assert _cause(prediction, causes.ATTENTION_BACKWARD) == -n * L * L * d
    assert _cause(prediction, causes.TOKEN_USE) == 0  # every parameter applied once per token
    assert len(prediction.contributions) == 5


def test_three_times_forward(gpt2, reference) -> None:  # noqa: ANN001
    model, inputs = gpt2
    result = get_adapter("rule-3x-forward").count(model, inputs, pass_=STEP)
    assert result.ok and result.macs == 3 * F and dict(result.extra) == {"forward_macs": F}
    prediction = reference.prediction("rule-3x-forward")
    assert prediction is not None and prediction.macs == 3 * F
    assert [(c.rule, c.macs) for c in prediction.contributions] == [(causes.ATTENTION_BACKWARD, -n * L * L * d)]


def test_torch_flop_counter_on_the_step(gpt2, reference) -> None:  # noqa: ANN001
    model, inputs = gpt2
    result = get_adapter("torch-flop-counter").count(model, inputs, pass_=STEP)
    # FlopCounterMode has no formula for the CPU flash kernel or its backward: the products only,
    # 2 x MACs, forward F - 2nLLd and backward twice that
    attention = 2 * n * L * L * d
    assert result.ok and result.raw_total == 2 * 3 * (F - attention)
    assert {p.phase: p.macs for p in result.phases} == {"forward": F - attention, "loss": 0,
                                                        "backward": 2 * (F - attention)}
    assert reference.prediction("torch-flop-counter").macs == result.macs


def test_rules_need_what_they_read() -> None:
    linear = torch.nn.Linear(4, 3)
    for backend, why in (("rule-6nd", "token ids"), ("rule-chinchilla", "Hugging Face config")):
        r = get_adapter(backend).count(linear, torch.randn(2, 4), pass_=STEP)
        assert r.status.value == "not applicable" and why in (r.error or "")
    inference = get_adapter("rule-3x-forward").count(linear, torch.randn(2, 4))
    assert inference.status.value == "not applicable" and "--pass train" in (inference.error or "")
    r = get_adapter("reference").count(linear, torch.randn(2, 4), pass_=STEP)
    assert {p.ruleset for p in r.predictions} == {"torch-flop-counter", "calflops", "rule-3x-forward"}


def test_one_number_per_sample_is_not_token_ids() -> None:
    """A diffusion model's timestep or a class label is an integer input of one number per sample:
    6·N·D does not take it for a sequence of tokens (it priced diffusers' UNet at 1 token, 0.008x)."""
    from flopaudit.rules_of_thumb import token_ids

    class Denoiser(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)
            self.time = torch.nn.Embedding(10, 4)

        def forward(self, x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
            return self.proj(x) + self.time(timestep)

    inputs = ModelInputs((torch.randn(2, 4), torch.tensor([3, 7])), {})
    assert token_ids(inputs) is None
    r = get_adapter("rule-6nd").count(Denoiser(), inputs, pass_=STEP)
    assert r.status.value == "not applicable" and "batch of sequences" in (r.error or "")
    sequences = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert token_ids(ModelInputs((sequences,), {})) is sequences  # (batch, sequence): tokens
    flat = torch.tensor([1, 2, 3])
    assert token_ids(ModelInputs((), {"input_ids": flat})) is flat  # named so: taken as given


def test_a_graph_networks_edge_index_is_not_token_ids() -> None:
    """A graph network takes ``edge_index`` (2 x edges, int64) and holds no embedding: 6·N·D does not
    take its edges for tokens (it priced a GCN's training step at 8x); a model with an embedding does."""
    from flopaudit.rules_of_thumb import token_ids

    class GraphConv(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
            h = self.lin(x)
            return torch.zeros_like(h).index_add_(0, edge_index[1], h[edge_index[0]])

    edges = torch.randint(0, 6, (2, 10))
    inputs = ModelInputs((torch.randn(6, 4), edges), {})
    assert token_ids(inputs, GraphConv()) is None
    r = get_adapter("rule-6nd").count(GraphConv(), inputs, pass_=STEP)
    assert r.status.value == "not applicable" and r.error == (
        "6·N·D needs token ids: the model's integer input (2x10) is not read as tokens: the model holds no "
        "nn.Embedding to look them up (a graph network's edge_index)"), r.error
    with_embedding = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4))
    assert token_ids(ModelInputs((edges,), {}), with_embedding) is edges


def test_frozen_and_first_layers_explain_three_times_forward() -> None:
    """A frozen backbone and a first layer: the causes of 3 x forward's excess, by hand."""
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.Linear(8, 3))
    model[2].requires_grad_(False)
    r = get_adapter("reference").count(model, torch.randn(4, 6), pass_=STEP)
    prediction = r.prediction("rule-3x-forward")
    # forward: 4*6*8 = 192, 4*8*8 = 256, 4*8*3 = 96; 3x forward = 3 * 544
    assert prediction.macs == 3 * 544
    # layer 0: first layer, no input gradient (+192); layer 2: frozen, no weight gradient (+256);
    # layer 3 both gradients as the rule assumes
    assert _cause(prediction, causes.NO_INPUT_GRAD) == 192
    assert _cause(prediction, causes.FROZEN) == 256
    assert prediction.macs - r.macs == 192 + 256
    frozen = next(c for c in prediction.contributions if c.rule == causes.FROZEN)
    assert dict(frozen.layers) == {"2": 256}


def test_checkpointing_explains_three_times_forward() -> None:
    from torch.utils.checkpoint import checkpoint

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8))
            self.b = torch.nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(checkpoint(self.a, x, use_reentrant=False))

    r = count(Net(), torch.randn(3, 4), pass_="train")
    # forward: a.0 3*4*8 = 96, a.2 3*8*8 = 192, b 3*8*2 = 48; the backward recomputes a.0 (the tensors
    # a.2's gradients need: the ReLU's output), 96 MACs that 3 x forward does not have
    assert r.phases["recompute"].total.macs == 96
    from flopaudit.reference.pricing import predict

    prediction = predict(r.events, r.module_call_records, causes.RULE_3X_FORWARD)
    assert prediction.macs == 3 * (96 + 192 + 48)
    assert _cause(prediction, causes.RECOMPUTE) == -96
    assert _cause(prediction, causes.NO_INPUT_GRAD) == 96  # a.0 is the first layer
    assert prediction.macs - r.macs == 96 - 96


def test_a_scaled_forward_counter_books_the_forward_rules_times_the_factor() -> None:
    """``times_forward(torchvision, 3)``: a backend counting the forward as torchvision's
    metadata does (products only) and tripling it. On Linear(6, 8) + bias as first layer:
    forward 4*6*8 = 192 MACs, the bias 4*8 = 32 extra FLOPs (no MACs either way); the first
    layer's input gradient the rule assumes is not computed (+192)."""
    from flopaudit.reference.pricing import predict
    from flopaudit.reference.rulesets import Ruleset, get_ruleset, register_ruleset

    name = "test-torchvision-x3"
    closed_form_name = f"{name}:closed"
    from flopaudit.reference.rulesets import CLOSED_FORMS, RULESETS

    CLOSED_FORMS[closed_form_name] = causes.times_forward(get_ruleset("torchvision"), 3)
    try:
        ruleset = register_ruleset(Ruleset(name=name, unit="MAC", description="test", closed_form=closed_form_name))
        r = count(torch.nn.Linear(6, 8), torch.randn(4, 6), pass_="train")
        prediction = predict(r.events, r.module_call_records, ruleset)
        assert prediction.macs == 3 * 192
        assert prediction.macs - r.macs == 192 and _cause(prediction, causes.NO_INPUT_GRAD) == 192
    finally:
        CLOSED_FORMS.pop(closed_form_name, None)
        RULESETS.pop(name, None)


def test_a_forward_multiple_books_every_layer_of_a_cause() -> None:
    """calflops prices a training step as 3 x its forward: each forward cause is booked layer by layer,
    every layer, not the eight the forward prediction names with the rest put on the root (twelve
    attention layers read as eight and a root holding four)."""

    class Blocks(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = torch.nn.ModuleList(torch.nn.MultiheadAttention(8, 2, batch_first=True) for _ in range(12))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.attn:
                x = x + layer(x, x, x, need_weights=False)[0]
            return x

    r = get_adapter("reference").count(Blocks(), torch.randn(2, 5, 8), pass_=STEP)
    prediction = r.prediction("calflops")
    assert prediction is not None
    causes = [c for c in prediction.contributions if "attention" in c.rule]
    assert causes, prediction.contributions
    for c in causes:
        assert c.layer_count == 12 and all(path.startswith("attn.") for path, _ in c.layers), c
