"""Hard cases about model structure and calling conventions rather than ops.

Reused modules (counted once per call), a module shared by two parents
(two names, still counted once per call), tied weights (parameters counted once),
several positional inputs, keyword-only inputs, dict inputs and dict/tuple
outputs, data-dependent control flow, buffers without parameters, inputs
without a batch dimension, modules wrapped by ``torch.compile``, a graph
exported with ``torch.export``, and activation checkpointing. MACs are
Linear/conv contractions as in :mod:`flopaudit.zoo.hard.layers`.
"""

from __future__ import annotations

import functools

import torch
from torch import einsum, matmul, nn  # einsum and matmul: the names ImportedNamesAttention calls

from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, ids_inputs, randn_inputs


class ReusedLinear(nn.Module):
    """One ``Linear(16, 16)`` applied twice, then a ``Linear(16, 4)`` head."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc(x))
        h = torch.relu(self.fc(h))  # second call of the same module: its MACs count again
        return self.head(h)


class _SharedBlock(nn.Module):
    """``own(shared(x))`` where ``shared`` is handed in (and may be handed to others)."""

    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.shared = shared
        self.own = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.own(self.shared(x))


class SharedTwoParents(nn.Module):
    """Two blocks holding the *same* ``Linear(16, 16)``: ``a.shared is b.shared``.

    The shared module has two names (``a.shared``, ``b.shared``) and runs
    twice, once in each block; counters that walk the module tree by name
    count it per name as well as per call.
    """

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(16, 16)
        self.a = _SharedBlock(shared)
        self.b = _SharedBlock(shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


class TiedEmbeddingLM(nn.Module):
    """An embedding and an output head that share one weight (100 x 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)
        self.head = nn.Linear(16, 100, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids))


class TwoInputs(nn.Module):
    """``forward(x, y)``: two positional tensors of different widths."""

    def __init__(self) -> None:
        super().__init__()
        self.fx = nn.Linear(16, 32)
        self.fy = nn.Linear(8, 32)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fx(x) + self.fy(y)


class KeywordOnly(nn.Module):
    """``forward(x, *, context, scale=1.0)``: the context tensor is keyword-only."""

    def __init__(self) -> None:
        super().__init__()
        self.fx = nn.Linear(16, 32)
        self.fc = nn.Linear(12, 32)

    def forward(self, x: torch.Tensor, *, context: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        return self.fx(x) + scale * self.fc(context)


class DictInOut(nn.Module):
    """Takes ``{"image", "meta"}`` and returns ``{"logits", "features": (image, meta)}``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.image_head = nn.Linear(4 * 8 * 8, 10)
        self.meta_head = nn.Linear(5, 10)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, object]:
        image = self.image_head(self.conv(batch["image"]).flatten(1))
        meta = self.meta_head(batch["meta"])
        return {"logits": image + meta, "features": (image, meta)}


class DataDependentBranch(nn.Module):
    """Runs ``fc2`` only when ``x.sum() > 0``: the work depends on the values."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        if x.sum() > 0:
            h = torch.relu(self.fc2(h))
        return self.head(h)


class BufferProjection(nn.Module):
    """``x @ W`` with ``W`` a registered buffer: work to count, no parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(16, 32))
        self.register_buffer("shift", torch.zeros(32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight + self.shift


class _ProjectedBlock(nn.Module):
    """``fc(x) @ proj``: a ``Linear(32, 32)`` then a product with the block's own weight."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(32, 32)
        self.proj = nn.Parameter(torch.randn(32, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.fc(x), self.proj)


class CompiledParts(nn.Module):
    """A ``torch.compile``d ``Linear(16, 32)`` (a compiled leaf) and a compiled block
    whose own ``forward`` makes a product (``_ProjectedBlock``), compiled with the
    ``eager`` backend (no code generation: what is compiled does not change what runs)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.compile(nn.Linear(16, 32), backend="eager")
        self.block = torch.compile(_ProjectedBlock(), backend="eager")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(torch.relu(self.stem(x)))


class CheckpointedBlocks(nn.Module):
    """Two ``Linear(16, 16)`` + ReLU blocks run through ``torch.utils.checkpoint``, then a
    ``Linear(16, 4)`` head. In a training step each block's forward runs again in the
    backward, up to the tensors its backward needs (torch's early stop)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(16, 16), nn.ReLU()) for _ in range(2))
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.utils.checkpoint import checkpoint

        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False)
        return self.head(x)


class _SmallConvNet(nn.Module):
    """Conv2d(3, 8, 3) + BatchNorm + ReLU, global average pool, Linear(8, 4), then ``torch.matmul``
    with a (4, 4) weight of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)
        self.mix = nn.Parameter(torch.randn(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.fc(self.pool(torch.relu(self.bn(self.conv(x)))).flatten(1)), self.mix)


def exported_program() -> nn.Module:
    """``_SmallConvNet`` exported in eval mode with ``torch.export`` (``ExportedProgram.module()``): a
    graph module calling ``torch.ops.aten`` operators, its submodules holding only parameters and
    buffers, and refusing ``train()``/``eval()`` (its mode is fixed at export)."""
    model = _SmallConvNet().eval()
    return torch.export.export(model, (torch.randn(2, 3, 8, 8),)).module()


def feature_extractor() -> nn.Module:
    """``_SmallConvNet`` in eval mode through torchvision's ``create_feature_extractor``,
    returning the batch norm's output and the last product: a graph module holding a train
    and an eval graph, switched by ``train()``/``eval()``; ``copy.deepcopy`` returns it in
    train mode with the train graph (its batch norm then uses batch statistics and
    updates its running ones), whatever mode it was in."""
    from torchvision.models.feature_extraction import create_feature_extractor

    return create_feature_extractor(_SmallConvNet().eval(), return_nodes={"bn": "norm", "matmul": "out"}).eval()


class _FunctionalAttention(nn.Module):
    """Single-head attention written with functional calls: ``F.linear`` projections
    (q, k, v, the first with a bias), ``F.scaled_dot_product_attention``, then
    ``torch.einsum`` with a (16, 8) output weight."""

    def __init__(self) -> None:
        super().__init__()
        self.wq, self.wk, self.wv = (nn.Parameter(torch.randn(16, 16) / 4) for _ in range(3))
        self.bq = nn.Parameter(torch.zeros(16))
        self.wo = nn.Parameter(torch.randn(16, 8) / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.nn.functional.linear(x, self.wq, self.bq)
        k = torch.nn.functional.linear(x, self.wk)
        v = torch.nn.functional.linear(x, self.wv)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        return torch.einsum("bld,de->ble", a, self.wo)


def fx_traced() -> nn.Module:
    """``_FunctionalAttention`` through ``torch.fx.symbolic_trace``: its generated code
    calls ``torch._C._nn.linear``, ``torch._C._nn.scaled_dot_product_attention`` and
    ``torch.functional.einsum``, the same callables as ``F.linear``,
    ``F.scaled_dot_product_attention`` and ``torch.einsum`` under other names."""
    return torch.fx.symbolic_trace(_FunctionalAttention().eval())


class ImportedNamesAttention(nn.Module):
    """Talking-heads attention as vit-pytorch's CaiT and CvT write it, calling ``einsum``
    and ``matmul`` by the names this module imported (``from torch import einsum,
    matmul``), which a patch of ``torch.einsum``/``torch.matmul`` does not reach: 3 heads
    of width 7 over 37 tokens, a (3, 3) head-mixing weight, then a (5, 37) pooling
    weight over the tokens by ``matmul`` (its batch is the second operand's)."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(21, 63)
        self.mix = nn.Parameter(torch.randn(3, 3) / 2)
        self.proj = nn.Linear(21, 21)
        self.pool = nn.Parameter(torch.randn(5, 37) / 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, 3, 7).permute(2, 0, 3, 1, 4)  # each (n, 3, 37, 7)
        scores = einsum("bhid,bhjd->bhij", q, k) * 7**-0.5
        scores = einsum("bhij,hg->bgij", scores, self.mix)
        y = einsum("bhij,bhjd->bhid", scores.softmax(-1), v)
        y = self.proj(y.transpose(1, 2).reshape(n, length, width))
        return matmul(self.pool, y)  # (5, 37) @ (n, 37, 21) -> (n, 5, 21)


class TracingBranchWarp(nn.Module):
    """Rotates its (2, 3, 12, 12) input by 30 degrees, then a Conv2d(3, 4, 3), building the
    sampling grid as kornia's ``warp_affine`` does: under a JIT trace (``torch.jit.is_tracing()``)
    with ``F.affine_grid`` (one node), otherwise by broadcast multiply-adds on a base grid
    (two products of the matrix entries with each of the 12 x 12 base coordinates)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        c, s = 3**0.5 / 2, 0.5
        self.register_buffer("theta", torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        m = self.theta.expand(n, 2, 3)
        if torch.jit.is_tracing():
            grid = torch.nn.functional.affine_grid(m, [n, 1, h, w], align_corners=False)
        else:
            xs = torch.linspace(-1 + 1 / w, 1 - 1 / w, w)
            ys = torch.linspace(-1 + 1 / h, 1 - 1 / h, h)
            base_y, base_x = torch.meshgrid(ys, xs, indexing="ij")
            gx = m[:, 0, 0, None, None] * base_x + m[:, 0, 1, None, None] * base_y + m[:, 0, 2, None, None]
            gy = m[:, 1, 0, None, None] * base_x + m[:, 1, 1, None, None] * base_y + m[:, 1, 2, None, None]
            grid = torch.stack([gx, gy], dim=-1)
        return self.conv(torch.nn.functional.grid_sample(x, grid, align_corners=False))


class RootCallsForwardItself(nn.Module):
    """A root whose ``__call__`` runs its ``forward`` itself, not through ``nn.Module.__call__``
    (gpytorch's ``Module`` does this for every GP model, mean and kernel): its own forward
    hooks never run. ``x @ w`` in its forward, then a ``Linear(8, 4)`` head called as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 8) / 8)
        self.head = nn.Linear(8, 4)

    def __call__(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.forward(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.matmul(x, self.w))


class VmapEnsemble(nn.Module):
    """torch.func's model-ensembling recipe: four ``Linear(8, 16), ReLU, Linear(16, 2)`` members'
    weights stacked (``stack_module_state``) and run through a skeleton kept on meta
    (``functional_call`` under ``vmap``)."""

    def __init__(self, members: int = 4) -> None:
        super().__init__()
        import copy

        from torch.func import stack_module_state

        models = [nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)) for _ in range(members)]
        params, _ = stack_module_state(models)
        self.names = list(params)
        self.stacked = nn.ParameterDict({k.replace(".", "_"): nn.Parameter(v) for k, v in params.items()})
        self.base = copy.deepcopy(models[0]).to("meta")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, vmap

        params = {n: self.stacked[n.replace(".", "_")] for n in self.names}
        return vmap(lambda p, x: functional_call(self.base, (p,), (x,)), in_dims=(0, None))(params, x)


class BatchedGradJacobianTrace(nn.Module):
    """A continuous normalizing flow's exact divergence, as zuko's CNF (FFJORD) takes it: ``tanh(Linear(4,
    4)(x))`` and the trace of its Jacobian, by ``torch.autograd.grad`` given the identity as batched
    ``grad_outputs`` (``is_grads_batched=True``: torch's older vmap runs the vector-Jacobian products)."""

    def __init__(self) -> None:
        super().__init__()
        self.f = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.clone().requires_grad_()
            y = torch.tanh(self.f(x))
        eye = torch.eye(x.shape[-1], dtype=x.dtype).expand(*x.shape, -1).movedim(-1, 0)
        jacobian = torch.autograd.grad(y, x, eye, is_grads_batched=True)[0]
        return y.detach() + torch.einsum("i...i", jacobian).unsqueeze(-1)


class ForcesFromAnEnergy(nn.Module):
    """An interatomic potential's energy and forces, as MACE computes them outside training: the
    energy ``sin(Linear(3, 3, bias=False)(x)).sum() + (x * x).sum()`` of positions ``x``, and the
    forces ``-d energy / d x`` by ``torch.autograd.grad`` (no graph of the backward kept). The two
    terms' gradients of ``x`` meet, and autograd sums them."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 3, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = x.clone().requires_grad_()
            energy = self.embed(x).sin().sum() + (x * x).sum()
            (gradient,) = torch.autograd.grad(energy, x)
        return energy.detach(), -gradient


def _dict_inputs() -> ModelInputs:
    return ModelInputs(({"image": torch.randn(2, 3, 8, 8), "meta": torch.randn(2, 5)},))


def _positive_inputs() -> ModelInputs:
    # torch.rand is in [0, 1): x.sum() > 0 always, so the fc2 branch always runs.
    return ModelInputs((torch.rand(4, 16),))


class CondBranch(DataDependentBranch):
    """:class:`DataDependentBranch` written with ``torch.cond`` on ``x.sum() > 0``: ``fc2``
    then ``head``, or ``head`` alone; the branch ops run inside the ``cond`` higher-order
    operator (in eager mode through ``torch.compile`` with Dynamo's eager backend)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc1(x))
        return torch.cond(x.sum() > 0, lambda t: self.head(torch.relu(self.fc2(t))), lambda t: self.head(t), (h,))


def cases() -> list[ModelCase]:
    return [
        hard_case(
            "module-reused",
            ReusedLinear,
            randn_inputs((4, 16)),
            {"reuse", "linear"},
            expected_macs=2 * (4 * 16 * 16) + 4 * 16 * 4,  # fc twice (batch 4 x 16 x 16) + head 4 x 16 x 4
            expected_params=16 * 16 + 16 + 16 * 4 + 4,  # fc once
            description="one Linear(16, 16) called twice in forward, then Linear(16, 4), on (4, 16)",
            default=True,
        ),
        hard_case(
            "module-shared-two-parents",
            SharedTwoParents,
            randn_inputs((4, 16)),
            {"reuse", "linear"},
            expected_macs=4 * (4 * 16 * 16),  # shared twice + a.own + b.own, each batch 4 x 16 x 16
            expected_params=3 * (16 * 16 + 16),  # shared (once), a.own, b.own
            description="one Linear(16, 16) held by two parent blocks (a.shared is b.shared), each block "
            "applying it then its own Linear(16, 16), on (4, 16)",
            default=True,
        ),
        hard_case(
            "tied-weights",
            TiedEmbeddingLM,
            ids_inputs(100, 2, 12),
            {"tied", "embedding", "linear"},
            expected_macs=2 * 12 * 16 * 100,  # head only: batch 2 x seq 12 x in 16 x vocab 100
            expected_params=100 * 16,  # embedding and head share one weight
            description="Embedding(100, 16) with a bias-free Linear(16, 100) head tied to it, on ids (2, 12)",
            default=True,
        ),
        hard_case(
            "two-inputs",
            TwoInputs,
            randn_inputs((4, 16), (4, 8)),
            {"multi-input", "linear"},
            expected_macs=4 * 16 * 32 + 4 * 8 * 32,
            expected_params=16 * 32 + 32 + 8 * 32 + 32,
            description="forward(x, y) = Linear(16, 32)(x) + Linear(8, 32)(y) with x (4, 16), y (4, 8)",
        ),
        hard_case(
            "kwargs-only",
            KeywordOnly,
            randn_inputs((4, 16), context=(4, 12)),
            {"kwargs", "multi-input", "linear"},
            expected_macs=4 * 16 * 32 + 4 * 12 * 32,
            expected_params=16 * 32 + 32 + 12 * 32 + 32,
            description="forward(x, *, context): x (4, 16) positional, context (4, 12) keyword-only",
        ),
        hard_case(
            "dict-io",
            DictInOut,
            _dict_inputs,
            {"dict", "multi-input", "conv", "linear"},
            # conv N x Cout x H x W x Cin x 3 x 3 + image head 2 x 256 x 10 + meta head 2 x 5 x 10
            expected_macs=2 * 4 * 8 * 8 * 3 * 3 * 3 + 2 * (4 * 8 * 8) * 10 + 2 * 5 * 10,
            expected_params=4 * 3 * 3 * 3 + 4 + 4 * 8 * 8 * 10 + 10 + 5 * 10 + 10,
            description="one dict argument {image (2, 3, 8, 8), meta (2, 5)}; returns a dict holding a tuple",
        ),
        hard_case(
            "data-dependent-branch",
            DataDependentBranch,
            _positive_inputs,
            {"control-flow", "linear"},
            # inputs are non-negative, so the x.sum() > 0 branch runs: fc1 + fc2 + head on batch 4
            expected_macs=4 * 16 * 32 + 4 * 32 * 32 + 4 * 32 * 4,
            expected_params=16 * 32 + 32 + 32 * 32 + 32 + 32 * 4 + 4,
            description="fc2 runs only if x.sum() > 0; inputs come from torch.rand (non-negative) so it always "
            "runs. Needs real values: a meta/fake-tensor or symbolic trace cannot decide the branch",
        ),
        hard_case(
            "torch-cond-branch",
            CondBranch,
            _positive_inputs,
            {"control-flow", "cond", "linear"},
            # inputs are non-negative, so the first branch runs: fc1 + fc2 + head on batch 4
            expected_macs=4 * 16 * 32 + 4 * 32 * 32 + 4 * 32 * 4,
            expected_params=16 * 32 + 32 + 32 * 32 + 32 + 32 * 4 + 4,
            description="data-dependent-branch written with torch.cond: fc2 then head if x.sum() > 0, head alone "
            "otherwise, on non-negative (4, 16) inputs; a dispatch mode receives the cond higher-order operator "
            "whole, whose dense kernel refuses to run under a mode",
        ),
        hard_case(
            "buffers-only",
            BufferProjection,
            randn_inputs((4, 16)),
            {"buffers", "functional"},
            expected_macs=4 * 16 * 32,  # x (4, 16) @ W (16, 32)
            expected_params=0,  # W and the shift are buffers
            description="x @ W + shift where W (16, 32) and shift (32,) are buffers: no parameters at all",
        ),
        hard_case(
            "compiled-submodules",
            CompiledParts,
            randn_inputs((4, 16)),
            {"compile", "linear", "functional"},
            # stem 4 x 16 x 32 + block.fc 4 x 32 x 32 + the block's matmul 4 x 32 x 8
            expected_macs=4 * 16 * 32 + 4 * 32 * 32 + 4 * 32 * 8,
            expected_params=16 * 32 + 32 + 32 * 32 + 32 + 32 * 8,
            description="torch.compile(nn.Linear(16, 32)) then relu, then a compiled block (Linear(32, 32), "
            "then torch.matmul with its own (32, 8) weight), on (4, 16). A compile wrapper (OptimizedModule) "
            "reads and writes attributes through to the module it wraps",
        ),
        hard_case(
            "exported-program",
            exported_program,
            randn_inputs((2, 3, 8, 8)),
            {"export", "conv", "linear", "functional"},
            # conv 2 x 8 x 8 x 8 positions x 3 x 3 x 3 + fc 2 x 8 x 4 + the matmul 2 x 4 x 4
            expected_macs=2 * 8 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 4 + 2 * 4 * 4,
            expected_params=(8 * 3 * 3 * 3 + 8) + (8 + 8) + (8 * 4 + 4) + 4 * 4,
            description="a small conv net (Conv2d(3, 8, 3), BatchNorm2d, ReLU, global pool, Linear(8, 4), "
            "torch.matmul with a (4, 4) weight) exported with torch.export, on (2, 3, 8, 8): its graph calls "
            "torch.ops.aten operators, and it refuses train()/eval()",
        ),
        hard_case(
            "fx-feature-extractor",
            feature_extractor,
            randn_inputs((2, 3, 8, 8)),
            {"fx", "conv", "linear", "functional", "dict"},
            # conv 2 x 8 x 8 x 8 positions x 3 x 3 x 3 + fc 2 x 8 x 4 + the matmul 2 x 4 x 4
            expected_macs=2 * 8 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 4 + 2 * 4 * 4,
            expected_params=(8 * 3 * 3 * 3 + 8) + (8 + 8) + (8 * 4 + 4) + 4 * 4,
            description="the small conv net of exported-program in eval mode through torchvision's "
            "create_feature_extractor (returning {norm: the batch norm's output, out: the last product}), on "
            "(2, 3, 8, 8): an FX graph module with a train and an eval graph, which copy.deepcopy returns in "
            "train mode",
        ),
        hard_case(
            "fx-traced-functional",
            fx_traced,
            randn_inputs((2, 6, 16)),
            {"fx", "attention", "sdpa", "functional"},
            # q, k, v: 3 x (2 x 6 x 16 x 16); attention 2 x (6 x 6 x 16) scores + the same for values;
            # output 2 x 6 x 16 x 8
            expected_macs=3 * (2 * 6 * 16 * 16) + 2 * (2 * 6 * 6 * 16) + 2 * 6 * 16 * 8,
            expected_params=3 * 16 * 16 + 16 + 16 * 8,
            description="single-head attention written with F.linear, F.scaled_dot_product_attention and "
            "torch.einsum, through torch.fx.symbolic_trace, on (2, 6, 16): the graph module's code calls them as "
            "torch._C._nn.linear, torch._C._nn.scaled_dot_product_attention and torch.functional.einsum",
        ),
        hard_case(
            "imported-names",
            ImportedNamesAttention,
            randn_inputs((2, 37, 21)),
            {"attention", "functional", "einsum", "matmul"},
            # qkv 2 x 37 x 21 x 63; scores and weighted sum 2 x 3 x 37 x 37 x 7 each; head mixing
            # 2 x 3 x 3 x 37 x 37; proj 2 x 37 x 21 x 21; pooling 2 x 5 x 37 x 21
            expected_macs=2 * 37 * 21 * 63 + 2 * (2 * 3 * 37 * 37 * 7) + 2 * 3 * 3 * 37 * 37 + 2 * 37 * 21 * 21
            + 2 * 5 * 37 * 21,
            expected_params=21 * 63 + 63 + 3 * 3 + 21 * 21 + 21 + 5 * 37,
            description="talking-heads attention calling einsum and matmul by names its module imported "
            "(from torch import einsum, matmul), as vit-pytorch writes it, on (2, 37, 21): 3 heads of 7, "
            "a (3, 3) head mix, a (5, 37) token pooling by matmul",
        ),
        hard_case(
            "tracing-branch-warp",
            TracingBranchWarp,
            randn_inputs((2, 3, 12, 12)),
            {"conv", "grid-sample", "functional"},
            expected_macs=2 * 4 * 10 * 10 * 3 * 3 * 3,  # the conv (the grid and the sampling are extra FLOPs)
            expected_params=4 * 3 * 3 * 3 + 4,
            description="a 30-degree rotation by grid_sample, then Conv2d(3, 4, 3), on (2, 3, 12, 12), its grid "
            "built by F.affine_grid under a JIT trace (torch.jit.is_tracing()) and by multiply-adds on a base "
            "grid otherwise, as kornia's warp_affine does",
        ),
        hard_case(
            "activation-checkpointing",
            CheckpointedBlocks,
            randn_inputs((4, 16)),
            {"checkpoint", "linear"},
            expected_macs=2 * (4 * 16 * 16) + 4 * 16 * 4,  # a forward pass: each block's Linear once, the head
            expected_params=2 * (16 * 16 + 16) + 16 * 4 + 4,
            description="two Linear(16, 16) + ReLU blocks, each through torch.utils.checkpoint "
            "(use_reentrant=False), then Linear(16, 4), on (4, 16); a training step recomputes the blocks "
            "in the backward",
        ),
        hard_case(
            "root-calls-forward-itself",
            RootCallsForwardItself,
            randn_inputs((5, 8)),
            {"linear", "matmul"},
            expected_macs=5 * 8 * 8 + 5 * 8 * 4,  # x @ w, then the head
            expected_params=8 * 8 + 8 * 4 + 4,
            description="a root whose __call__ calls its forward itself, as gpytorch's modules do: x @ w in its "
            "forward (no module of the model is running: module hooks, and the counters that total what they "
            "collect, see none of it), then nn.Linear(8, 4) called as usual, on (5, 8)",
        ),
        hard_case(
            "vmap-ensemble",
            VmapEnsemble,
            randn_inputs((5, 8)),
            {"linear", "functional"},
            expected_macs=4 * 5 * (8 * 16 + 16 * 2),  # each member on the 5 rows
            expected_params=4 * (8 * 16 + 16 + 16 * 2 + 2) + (8 * 16 + 16 + 16 * 2 + 2),  # stacked, and the skeleton
            description="torch.func's ensembling recipe: four MLPs Linear(8, 16), ReLU, Linear(16, 2), their weights "
            "stacked and run by vmap(functional_call) through a skeleton kept on meta, on (5, 8): the model runs "
            "where its weights and inputs are; torch.profiler records each operator under vmap at its per-sample "
            "shapes and again batched",
        ),
        hard_case(
            "batched-grad-jacobian-trace",
            BatchedGradJacobianTrace,
            randn_inputs((3, 4)),
            {"linear", "functional", "autograd"},
            expected_macs=3 * 4 * 4 + 4 * (3 * 4 * 4),  # the Linear; one product with its weight per row of eye
            expected_params=4 * 4 + 4,
            description="tanh(Linear(4, 4)) and the exact trace of its Jacobian by torch.autograd.grad with the "
            "identity as batched grad_outputs (is_grads_batched=True), as zuko's continuous normalizing flows "
            "take it, on (3, 4): torch's older vmap runs the backward's product for the 4 rows at once, and "
            "torch.profiler records it at the per-sample shapes and again batched",
        ),
        hard_case(
            "forces-from-an-energy",
            ForcesFromAnEnergy,
            randn_inputs((5, 3)),
            {"linear", "functional", "autograd"},
            expected_macs=2 * (5 * 3 * 3),  # the Linear, and its product in the gradient of the input
            expected_params=3 * 3,
            description="an energy sin(Linear(3, 3, bias=False)(x)).sum() + (x * x).sum() of (5, 3) positions and "
            "the forces -d energy / d x by torch.autograd.grad, as MACE computes them outside training: where the "
            "two terms' gradients meet, autograd sums them in place without a dispatch mode (aten::add_, which "
            "torch.profiler does not price) and out of place under one",
        ),
        hard_case(
            "conv2d-unbatched",
            functools.partial(nn.Conv2d, 3, 8, 3, padding=1),
            randn_inputs((3, 16, 16)),
            {"unbatched", "conv"},
            expected_macs=8 * 16 * 16 * 3 * 3 * 3,  # no batch: Cout x H x W x Cin x kH x kW
            expected_params=8 * 3 * 3 * 3 + 8,
            description="nn.Conv2d(3, 8, 3, padding=1) on an unbatched (3, 16, 16) image: dim 0 is channels",
            default=True,
        ),
        hard_case(
            "linear-unbatched",
            functools.partial(nn.Linear, 16, 32),
            randn_inputs((16,)),
            {"unbatched", "linear"},
            expected_macs=16 * 32,
            expected_params=16 * 32 + 32,
            description="nn.Linear(16, 32) on a 1-D (16,) vector",
        ),
    ]
