"""Models addressed as ``module:function`` in the CLI tests, and :class:`Fn`, which the
reference counter's tests wrap a functional call in."""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn


class Fn(nn.Module):
    """Wraps a functional call so that it runs inside a module (the tests' way to count one call)."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(*args)


def tiny_linear() -> nn.Module:
    return nn.Linear(4, 2, bias=False)


def tiny_inputs() -> tuple[torch.Tensor]:
    return (torch.randn(3, 4),)


def not_a_model() -> int:
    return 3


NOT_CALLABLE = 5


def raising_factory() -> nn.Module:
    raise RuntimeError("no weights for you")


def needs_width(width: int) -> nn.Module:
    return nn.Linear(4, width)


def float64_by_default() -> nn.Module:
    """``tiny_linear`` built after its factory made float64 torch's default dtype (for the whole process)."""
    torch.set_default_dtype(torch.float64)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return nn.Linear(4, 2, bias=False)


def patches_linear() -> nn.Module:
    """``tiny_linear`` whose factory replaces ``torch.nn.functional.linear`` for the whole process
    with one that also doubles the result (as a library swapping in its own kernel might)."""
    import torch.nn.functional as F

    plain = F.linear
    F.linear = lambda x, w, b=None: plain(x, w, b) * 2
    return nn.Linear(4, 2, bias=False)


def inputs_without_return() -> None:
    """An inputs factory that forgot its ``return``."""
    torch.randn(3, 4)


class EinsumLayer(nn.Module):
    """A custom layer: ``x @ kernel`` written as ``torch.einsum``, with a
    parameter no hook-based counter knows (not named ``weight``)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(d_in, d_out) / d_in**0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bi,ij->bj", x, self.kernel)


def einsum_net() -> nn.Module:
    """Linear(16, 16) then EinsumLayer(16, 96): 256 + 1536 MACs per sample,
    so a counter blind to the custom layer misses 1536 / 1792 = 86%."""
    return nn.Sequential(nn.Linear(16, 16, bias=False), EinsumLayer(16, 96))


class MaskedLinear(nn.Module):
    """Reads its mask's values in forward (as Hugging Face models check an attention mask)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is not None and not bool(mask.all()):
            x = x * mask.unsqueeze(-1)
        return self.fc(x)


def masked_linear() -> nn.Module:
    return MaskedLinear()


def masked_inputs() -> dict[str, torch.Tensor]:
    return {"x": torch.randn(2, 5, 8), "mask": torch.ones(2, 5)}


def unmasked_inputs() -> dict[str, torch.Tensor]:
    return {"x": torch.randn(2, 5, 8)}


def tokenizer_style_inputs() -> Any:
    """What a Hugging Face tokenizer returns: a ``BatchEncoding``, a mapping that is not a dict."""
    from collections import UserDict

    return UserDict({"x": torch.randn(2, 5, 8), "mask": torch.ones(2, 5)})


class _PositiveMean(nn.Module):
    """Linear(8, 4), then the mean of its positive outputs (``y[y > 0]``: a shape that depends on values)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y[y > 0].mean()


def positive_mean() -> nn.Module:
    return _PositiveMean()


def meta_mlp() -> nn.Module:
    """Linear(16, 32), ReLU, Linear(32, 4) built by its own code on the meta device (as a factory of a model
    too big for memory is written), with no --meta given."""
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def meta_inputs() -> torch.Tensor:
    return torch.empty(8, 16, device="meta")


def cpu_inputs_16() -> torch.Tensor:
    return torch.randn(8, 16)


def linear_8_to_4() -> nn.Module:
    """Linear(8, 4): takes what positive_mean and cpu_positions take, and runs on the meta device."""
    return nn.Linear(8, 4)


class _Forces(nn.Module):
    """An interatomic potential in miniature: energy = Linear(3, 16), tanh, Linear(16, 1), summed;
    the forward returns the forces, minus the energy's gradient by the positions
    (``torch.autograd.grad`` inside the forward: it fails under ``torch.no_grad()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.energy = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        positions = positions.detach().requires_grad_(True)
        energy = self.energy(positions).sum()
        (grad,) = torch.autograd.grad(energy, positions, create_graph=self.training)
        return -grad


def forces() -> nn.Module:
    return _Forces()


class _CPUPositions(nn.Module):
    """Adds position indices made with ``torch.arange(n)`` (no ``device=``: on the CPU), as XLNet
    builds its relative positions."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x + torch.arange(x.shape[-1]))


def cpu_positions() -> nn.Module:
    return _CPUPositions()


class _MeasuredHead(nn.Module):
    """Runs itself in its constructor to measure its stride on a CPU tensor, then sets its bias from
    that stride's value: as ultralytics' detection models do (``DetectionModel.__init__`` runs a forward
    pass on ``torch.zeros``; ``Detect.bias_init`` reads ``self.stride[i]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.register_buffer("stride", torch.tensor([8 / self.forward(torch.zeros(1, 3, 8, 8)).shape[-1]]))
        self.conv.bias.data[:] = float(self.stride[0]) / 10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def measured_head() -> nn.Module:
    return _MeasuredHead()


class _AssertsItsWidth(nn.Module):
    """Checks its input's width with a bare ``assert`` (no message), as timm's attention layers check
    their input's size."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-1] == 8
        return self.fc(x)


def asserts_its_width() -> nn.Module:
    return _AssertsItsWidth()


class _ChecksItsInit(nn.Module):
    """Checks in its constructor what its initialiser did (its weight orthogonal), so that it builds
    only where its weights are initialised and hold values: on the CPU and nowhere else."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4, bias=False)
        nn.init.orthogonal_(self.fc.weight)
        if not torch.allclose(self.fc.weight @ self.fc.weight.T, torch.eye(4), atol=1e-4):
            raise ValueError("the weight is not orthogonal")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def checks_its_init() -> nn.Module:
    return _ChecksItsInit()


class _FaultsOnSecondPass(nn.Module):
    """A Linear(4, 2) whose second forward pass (the first one the cost phase runs) hangs or exits."""

    def __init__(self, fault: str) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.fault = fault
        self.passes = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.passes += 1
        if self.passes >= 2:
            if self.fault == "hang":
                import time

                while True:
                    time.sleep(1)
            import os

            os._exit(7)
        return self.fc(x)


def hangs_on_second_pass() -> nn.Module:
    return _FaultsOnSecondPass("hang")


def exits_on_second_pass() -> nn.Module:
    return _FaultsOnSecondPass("exit")


def mlp16() -> nn.Module:
    """Linear(16, 32), ReLU, Linear(32, 8): takes what einsum_net takes."""
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))


class TrainOnlyHead(nn.Module):
    """Runs a second Linear only in train mode (as GoogLeNet's auxiliary heads do)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4, bias=False)
        self.aux = nn.Linear(4, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return y + self.aux(y).sum() if self.training else y


def train_only_head() -> nn.Module:
    return TrainOnlyHead()


def squared_loss(output: torch.Tensor) -> torch.Tensor:
    """A user loss for ``--loss``: the sum of squares of the output."""
    return output.pow(2).sum()


class SignMomentum(torch.optim.Optimizer):
    """An optimizer of the user's own (Lion's update, Chen et al. 2023). Per element, as the
    reference prices it (an ``add`` with ``alpha`` is one FLOP, as SGD's update): ``m.mul(b1)`` 1,
    ``.add_(g, alpha=1-b1)`` 1, ``.sign_()`` 1, ``p.add_(update, alpha=-lr)`` 1, ``m.mul_(b2)`` 1,
    ``.add_(g, alpha=1-b2)`` 1: 6 FLOPs an element."""

    def __init__(self, params: Any, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99)) -> None:
        super().__init__(params, {"lr": lr, "betas": betas})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["momentum"] = torch.zeros_like(p)
                m = state["momentum"]
                update = m.mul(b1).add_(p.grad, alpha=1 - b1).sign_()
                p.add_(update, alpha=-group["lr"])
                m.mul_(b2).add_(p.grad, alpha=1 - b2)


def not_an_optimizer(params: Any) -> int:
    return len(list(params))


def loss_raises(output: torch.Tensor) -> torch.Tensor:
    raise ValueError("no labels here")


def linear_batchnorm() -> nn.Module:
    """Linear(4, 4) then BatchNorm1d(4): in train mode a batch of one fails (one value per channel)."""
    return nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))


def token_classifier() -> nn.Module:
    """Embedding(100, 8) then Linear(8, 2): takes token ids, so --input-shape's float tensor fails."""
    return nn.Sequential(nn.Embedding(100, 8), nn.Linear(8, 2))


def token_ids() -> torch.Tensor:
    return torch.randint(0, 100, (1, 16))


# -- models that say each time they are built (FLOPAUDIT_TEST_BUILDS names the file): how often a run builds each

def _log_build(name: str) -> None:
    import os

    with open(os.environ["FLOPAUDIT_TEST_BUILDS"], "a") as f:
        f.write(name + "\n")


def logged_linear_a() -> nn.Module:
    _log_build("a")
    return nn.Linear(8, 4)


def logged_linear_b() -> nn.Module:
    _log_build("b")
    return nn.Linear(8, 2)


def logged_raising() -> nn.Module:
    _log_build("raising")
    raise RuntimeError("no weights for you")


def logged_hanging() -> nn.Module:
    import time

    _log_build("hanging")
    time.sleep(3600)
    return nn.Linear(8, 4)


class _Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.fc(x)
        return y, y


def pair_output() -> nn.Module:
    """Linear(8, 4) returning its output twice, as a tuple: ``squared_loss`` fails on it."""
    return _Pair()


def gpt2_tiny() -> nn.Module:
    """transformers' GPT-2 from a tiny config: it looks for padding tokens in ``input_ids`` when no
    ``attention_mask`` is given (``warn_if_padding_and_no_attention_mask``), reading their values."""
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2, pad_token_id=0)
    return GPT2Model(config).eval()


def gpt2_ids() -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(1, 64, (1, 8))}


def gpt2_ids_masked() -> dict[str, torch.Tensor]:
    return {**gpt2_ids(), "attention_mask": torch.ones(1, 8, dtype=torch.long)}


def qwen3_moe_tiny() -> nn.Module:
    """transformers' Qwen3-MoE from a tiny config: its experts run as ``torch._grouped_mm``, and
    given an ``attention_mask`` it reads the mask to see whether it can leave it out."""
    from transformers import Qwen3MoeConfig, Qwen3MoeModel

    torch.manual_seed(0)
    config = Qwen3MoeConfig(vocab_size=64, hidden_size=16, intermediate_size=32, moe_intermediate_size=8,
                            num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
                            num_experts=4, num_experts_per_tok=2, max_position_embeddings=16, pad_token_id=0)
    return Qwen3MoeModel(config).eval()


def exits_with_a_message() -> nn.Module:
    """A factory that gives up with ``sys.exit(message)``, as command-line scripts do."""
    import sys

    print("reading the model's config", file=sys.stderr)
    sys.exit("config error: no field 'width'")


class _SaysThenExits(nn.Module):
    """Writes why to standard error and ends its process, as a native library's fatal check does."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import os
        import sys

        print("fatal: kernel not built for this machine", file=sys.stderr, flush=True)
        os._exit(4)


def says_then_exits() -> nn.Module:
    return _SaysThenExits()


_LOCKS: list[Any] = []


def holds_a_process_lock() -> nn.Module:
    """A factory that makes a ``multiprocessing`` lock and keeps it, as tqdm does for its write lock
    (peft's ``merge_and_unload`` shows a tqdm bar): the lock's semaphore lives until its process exits."""
    import multiprocessing

    _LOCKS.append(multiprocessing.RLock())
    return nn.Linear(8, 4)


class _MovesItself(nn.Module):
    """A constructor that moves what it builds to the device it was told, as stable-baselines3's
    policies do (``MlpExtractor(...).to(self.device)``), and a head cast to float64 on the way."""

    def __init__(self, device: str = "cpu") -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(8, 16), nn.ReLU()).to(torch.device(device))
        self.head = nn.Linear(16, 4).to(device, torch.float64)
        self.cpu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).double())


def moves_itself() -> nn.Module:
    return _MovesItself()


class _GaussianPolicy(nn.Module):
    """A policy head as stable-baselines3 writes one: a ``Normal`` over actions made in every forward
    (``torch.distributions`` checks its arguments by default: here asked for, whatever the process's
    default), a sample and its log-probability."""

    def __init__(self) -> None:
        super().__init__()
        self.mean = nn.Linear(8, 2)
        self.log_std = nn.Parameter(torch.zeros(2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = torch.distributions.Normal(self.mean(x), self.log_std.exp(), validate_args=True)
        action = dist.rsample()
        return action, dist.log_prob(action).sum(-1)


def gaussian_policy() -> nn.Module:
    return _GaussianPolicy()


class _CastsByTypeName(nn.Module):
    """Casts by type name, as older code (lucidrains' linear-attention transformer) does:
    ``x + self.pos(x).type(x.type())``, once to the input's own type and once to float64's."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Linear(8, 8)
        self.head = nn.Linear(8, 4).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos(x).type(x.type())
        return self.head(x.type(self.head.weight.type()))


def casts_by_type_name() -> nn.Module:
    return _CastsByTypeName()


class _FastWeights(nn.Module):
    """A memory Linear(8, 8) given one gradient step inside the forward with torch.func, then
    applied with the stepped weights, as titans' neural memory updates its memory network."""

    def __init__(self) -> None:
        super().__init__()
        self.memory = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = dict(self.memory.named_parameters())

        def loss(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(self.memory, p, (x,)).pow(2).sum()

        grads = torch.func.grad(loss)(params, x)
        stepped = {k: v - 0.1 * grads[k] for k, v in params.items()}
        return torch.func.functional_call(self.memory, stepped, (x,))


def fast_weights() -> nn.Module:
    return _FastWeights()


def _reflect_pad(x: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """Reflection padding that checks the padded tensor holds ``x`` unchanged, as demucs' ``pad1d`` does."""
    out = F.pad(x, (left, right), "reflect")
    assert (out[..., left:left + x.shape[-1]] == x).all()
    return out


class _AssertsValues(nn.Module):
    """Asserts its input is finite (with a message), pads it by reflection (asserting the padding
    kept it), then a Conv1d(2, 4, 3); with ``branch``, also doubles the input where every value is
    positive, an ``if`` on values."""

    def __init__(self, branch: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)
        self.branch = branch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert torch.isfinite(x).all(), "the input holds a NaN or an infinity"
        if self.branch and (x > 0).all():
            x = x * 2
        return self.conv(_reflect_pad(x, 1, 1))


def asserts_values() -> nn.Module:
    return _AssertsValues()


def asserts_and_branches_on_values() -> nn.Module:
    return _AssertsValues(branch=True)


def _scaled_products(x: torch.Tensor, c: float) -> torch.Tensor:
    """Six elementwise products and sums of ``x``'s size."""
    y = c * x
    z = x * x.sum(-1, keepdim=True)
    return (y + 1.0) * z + 2 * x


@functools.cache
def scripted_products() -> Any:
    """:func:`_scaled_products` compiled by ``torch.jit.script`` (once)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(_scaled_products)


class _CallsScriptedProducts(nn.Module):
    """Linear(8, 8), then a TorchScript function of elementwise work (geoopt writes its manifolds' maths so)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.products = scripted_products()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.products(self.fc(x), 0.5)


def calls_scripted_products() -> nn.Module:
    return _CallsScriptedProducts()


class _ScaledProducts(nn.Module):
    """:func:`_scaled_products` as a module's forward (with c = 0.5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _scaled_products(x, 0.5)


class _HoldsScriptedProducts(nn.Module):
    """Linear(8, 8), then a scripted module of elementwise work (e3nn compiles its layers so)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.products = torch.jit.script(_ScaledProducts())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.products(self.fc(x))


def holds_scripted_products() -> nn.Module:
    return _HoldsScriptedProducts()


class _Hangs(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import time

        while True:
            time.sleep(0.1)


def says_how_many_objects_are_frozen() -> nn.Module:
    """A factory that prints how many objects its process's garbage collector leaves frozen."""
    import gc

    print(f"frozen objects: {gc.get_freeze_count()}")
    return nn.Linear(8, 4)


def holds_a_process_lock_and_hangs() -> nn.Module:
    """:func:`holds_a_process_lock`, whose forward never returns: its worker is killed at the timeout."""
    holds_a_process_lock()
    return _Hangs()


class _ScalarFilledSoftmax(nn.Module):
    """A softmax over masked scores whose fill value is ``torch.tensor(min)``, a zero-dimensional CPU
    tensor, as transformers' SEW-D and DeBERTa write it."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.fc(x)
        filled = scores.masked_fill(scores > 0, torch.tensor(torch.finfo(scores.dtype).min))
        return torch.softmax(filled, -1)


def scalar_filled_softmax() -> nn.Module:
    return _ScalarFilledSoftmax()


class _LegacyBuffer(nn.Module):
    """Registers a buffer made by the legacy constructor ``torch.Tensor(list)``, which a
    ``torch.device`` block does not reach (it makes a CPU tensor there too), as x-transformers'
    ALiBi slopes are made."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.register_buffer("slopes", torch.Tensor([0.5, 0.25, 0.125, 0.0625]), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * self.slopes


def legacy_buffer() -> nn.Module:
    return _LegacyBuffer()


class _TableSkippedOnMeta(nn.Module):
    """Builds a cos/sin table in its constructor only from frequencies that are not meta tensors, and
    refuses to run without it: as torchtune's Llama 3 rotary embedding does (``rope_init`` returns early
    when ``freqs.is_meta``, for recipes that build on meta and call it again once the weights are real;
    its forward raises "RoPE cache is not built")."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)
        self.built = False
        freqs = 1.0 / (10_000 ** (torch.arange(0, 8, 2).float() / 8))
        if freqs.is_meta:
            return
        angles = torch.outer(torch.arange(8).float(), torch.tensor([float(f) for f in freqs]))  # (values read)
        self.register_buffer("table", torch.cat([angles.cos(), angles.sin()], dim=-1), persistent=False)
        self.built = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.built:
            raise RuntimeError("table is not built: call its init again once the weights are real")
        return self.fc(x * self.table[: x.shape[-1], 0])


def table_skipped_on_meta() -> nn.Module:
    return _TableSkippedOnMeta()


class _AutocastOff(nn.Module):
    """Runs its layer with autocast turned off on its input's device, as x-transformers'
    ``disable_autocast`` does (``with autocast(x.device.type, enabled=False)``); with ``enabled``,
    turned on instead."""

    def __init__(self, enabled: bool = False) -> None:
        super().__init__()
        self.enabled = enabled
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=self.enabled):
            return self.fc(x).float().softmax(-1)


def autocast_off() -> nn.Module:
    return _AutocastOff()


def autocast_on() -> nn.Module:
    return _AutocastOff(enabled=True)


class _FlexCausalAttention(nn.Module):
    """``Linear(8, 24)`` projections of (batch, 16, 8) into two heads, then ``flex_attention`` under a
    causal block mask made on the input's device, as torchtitan's models attend."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        n, length, _ = x.shape
        q, k, v = self.qkv(x).view(n, length, 3, 2, 4).permute(2, 0, 3, 1, 4)

        def causal(b: torch.Tensor, h: torch.Tensor, qi: torch.Tensor, ki: torch.Tensor) -> torch.Tensor:
            return qi >= ki

        mask = create_block_mask(causal, None, None, length, length, device=x.device)
        return flex_attention(q, k, v, block_mask=mask)


def flex_causal_attention() -> nn.Module:
    return _FlexCausalAttention()


class _SpectralMask(nn.Module):
    """A spectrogram mask as source separators apply it (demucs, BS-RoFormer): ``torch.stft`` of a
    (batch, time) signal with a Hann window, a Linear(65, 65) over the magnitudes' frequencies, its
    sigmoid times the spectrum, and ``torch.istft`` back to the signal's length."""

    def __init__(self) -> None:
        super().__init__()
        self.mask = nn.Linear(65, 65)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = torch.hann_window(128, device=x.device)
        spec = torch.stft(x, 128, 32, window=window, return_complex=True)
        gate = self.mask(spec.abs().transpose(1, 2)).sigmoid().transpose(1, 2)
        return torch.istft(spec * gate, 128, 32, window=window, length=x.shape[-1])


def spectral_mask() -> nn.Module:
    return _SpectralMask()


class _Float32Router(nn.Module):
    """Computes its gate under ``torch.autocast(x.device.type, dtype=torch.float32)``, as torchtitan's
    mixture-of-experts router does, then a Linear(8, 4) of the gated input."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = nn.Linear(8, 8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, dtype=torch.float32):
            scores = self.gate(x).sigmoid()
        return self.fc(x * scores)


def float32_router() -> nn.Module:
    return _Float32Router()


class _Float32Projection(nn.Module):
    """Projects with a matrix its forward makes itself, in float32 whatever its input's dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) @ torch.ones(4, 2)


def float32_projection() -> nn.Module:
    return _Float32Projection()
