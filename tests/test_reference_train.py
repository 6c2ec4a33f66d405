"""The reference counter's training step, against closed forms derived by hand.

Conventions (see :mod:`flopaudit.reference.formulas`): a product of an
``(M, K)`` and a ``(K, N)`` matrix is ``M*K*N`` MACs, and its gradients are
products of the same size: ``dX = dY @ W`` and ``dW = dY^T @ X``, each
computed only if autograd needs it. A sum of ``n`` elements down to ``m`` is
``n - m`` extra FLOPs (the default loss, and bias gradients). Every number
below is written out as the arithmetic it comes from.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

from flopaudit import training
from flopaudit.errors import UserError
from flopaudit.passes import OPTIMIZERS
from flopaudit.reference import count

N = 4


def macs(result, phase: str) -> int:  # noqa: ANN001
    return result.phases[phase].total.macs if phase in result.phases else 0


def extra(result, phase: str) -> int:  # noqa: ANN001
    return result.phases[phase].total.extra_flops if phase in result.phases else 0


def module_macs(result, phase: str, path: str) -> int:  # noqa: ANN001
    per_module = result.phases[phase].per_module if phase in result.phases else {}
    return per_module[path].macs if path in per_module else 0


def test_linear_with_bias_as_first_layer() -> None:
    model = nn.Linear(6, 5)
    r = count(model, torch.randn(N, 6), pass_="train")
    assert r.pass_.train and list(r.phases) == ["forward", "loss", "backward"]
    # forward: addmm 4x6 @ 6x5 = 4*6*5 = 120 MACs, bias 4*5 = 20 adds
    assert (macs(r, "forward"), extra(r, "forward")) == (120, 20)
    # loss: sum of the 4x5 output = 20 - 1 = 19 adds
    assert (macs(r, "loss"), extra(r, "loss")) == (0, 19)
    # backward: the input needs no gradient (first layer): only dW = dY^T @ X, 5x4 @ 4x6 = 120;
    # the bias gradient sums dY over the batch: 20 - 5 = 15
    assert (macs(r, "backward"), extra(r, "backward")) == (120, 15)
    assert r.macs == 240 and r.unsupported == {}


def test_linear_without_bias_and_not_first() -> None:
    model = nn.Sequential(nn.Linear(6, 8, bias=False), nn.Linear(8, 3, bias=False))
    r = count(model, torch.randn(N, 6), pass_="train")
    # forward: 4*6*8 = 192 and 4*8*3 = 96
    assert macs(r, "forward") == 192 + 96
    # backward: layer 1 (first: weight gradient only) 192; layer 2 (its input needs a gradient) 2 * 96
    assert module_macs(r, "backward", "0") == 192
    assert module_macs(r, "backward", "1") == 2 * 96
    assert extra(r, "backward") == 0  # no bias, no activation
    # the same layer with an input that requires a gradient computes both gradients
    x = torch.randn(N, 6, requires_grad=True)
    assert macs(count(nn.Linear(6, 8, bias=False), x, pass_="train"), "backward") == 2 * 192


def test_conv2d_first_layer_and_grouped_second() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, groups=2))
    r = count(model, torch.randn(2, 3, 8, 8), pass_="train")
    # conv 1: out 2x4x8x8, per output 3*3*3 taps: 2*4*64 * 27 = 13824 MACs, bias 2*4*64 = 512 adds
    # conv 2: out 2x6x6x6, groups 2: per output (4/2)*3*3 = 18 taps: 2*6*36 * 18 = 7776 MACs, bias 432 adds
    assert module_macs(r, "forward", "0") == 13824 and module_macs(r, "forward", "1") == 7776
    assert extra(r, "forward") == 512 + 432
    # backward: conv 1 weight gradient only (13824), conv 2 input and weight gradients (2 * 7776);
    # bias gradients sum dY over batch and positions: (512 - 4) + (432 - 6)
    assert module_macs(r, "backward", "0") == 13824
    assert module_macs(r, "backward", "1") == 2 * 7776
    assert extra(r, "backward") == 508 + 426


def test_frozen_backbone_with_a_trainable_head() -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    for p in model[0].parameters():
        p.requires_grad_(False)
    r = count(model, torch.randn(N, 6), pass_="train")
    # forward: 4*6*8 = 192 (backbone) + 4*8*3 = 96 (head)
    assert macs(r, "forward") == 192 + 96
    # backward: the head's weight gradient only (its input comes from a frozen layer: no gradient),
    # 3x4 @ 4x8 = 96; bias gradient 12 - 3 = 9; nothing at all runs for the backbone or the ReLU
    assert (macs(r, "backward"), extra(r, "backward")) == (96, 9)
    backward_paths = {e.module_path for e in r.events if e.phase == "backward"}
    assert backward_paths <= {"", "2"} and "0" not in r.phases["backward"].per_module
    assert r.params.trainable == 8 * 3 + 3


def test_embedding_gradient_is_a_scatter_add() -> None:
    r = count(nn.Embedding(10, 8), torch.randint(0, 10, (2, 5)), pass_="train")
    # forward: a gather, free; loss: 2*5*8 = 80 elements summed, 79 adds
    assert (macs(r, "forward"), extra(r, "forward"), extra(r, "loss")) == (0, 0, 79)
    # backward: every gathered row added into the weight gradient: 2*5 indices * 8 = 80 adds
    assert (macs(r, "backward"), extra(r, "backward")) == (0, 80)
    assert {e.op for e in r.events if e.extra_flops and e.phase == "backward"} == {
        "aten.embedding_dense_backward.default"}


@pytest.mark.parametrize("input_grad", [True, False])
def test_layer_norm(input_grad: bool) -> None:
    n = N * 16
    x = torch.randn(N, 16, requires_grad=input_grad)
    r = count(nn.LayerNorm(16), x, pass_="train")
    # forward: statistics 5 per element + weight 1 + bias 1 = 7 * 64
    assert extra(r, "forward") == 7 * n
    # backward: input gradient 9 + 1 (weight) per element when asked for, weight gradient 2, bias gradient 1
    assert extra(r, "backward") == (10 * n if input_grad else 0) + 2 * n + 1 * n


def test_lstm() -> None:
    lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
    r = count(lstm, torch.randn(2, 5, 8), pass_="train")
    steps = 2 * 5
    # forward per step: layer 1 4*16*(8+16) = 1536, layer 2 4*16*(16+16) = 2048
    forward = steps * (1536 + 2048)
    assert macs(r, "forward") == forward == 35840
    # backward: the oneDNN kernel computes the input, hidden and weight gradients of every layer:
    # each weight matrix twice per step
    assert macs(r, "backward") == 2 * forward


def test_multihead_attention() -> None:
    e, heads, length = 16, 4, 5
    mha = nn.MultiheadAttention(e, heads, batch_first=True)
    x = torch.randn(2, length, e)
    r = count(mha, (x, x, x), pass_="train")
    b = 2
    # forward: packed q/k/v projection 2*5*16*48, scores q@k^T 2*4*5*5*4, weights@v the same,
    # output projection 2*5*16*16
    proj_in, scores, out = b * length * e * 3 * e, b * heads * length * length * (e // heads), b * length * e * e
    assert macs(r, "forward") == proj_in + 2 * scores + out == 4 * b * length * e * e + 2 * b * length * length * e
    # backward: output projection both gradients (2*out), both attention products both operands
    # (4*scores), the input projection its weight gradient only (x needs no gradient)
    assert macs(r, "backward") == 2 * out + 4 * scores + proj_in


class Checkpointed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.b = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(checkpoint(self.a, x, use_reentrant=False))


@pytest.mark.parametrize("early_stop", [True, False])
def test_activation_checkpointing_recomputes(early_stop: bool) -> None:
    x = torch.randn(3, 4)
    with set_checkpoint_early_stop(early_stop):
        r = count(Checkpointed(), x, pass_="train")
    # forward: a.0 3*4*8 = 96, a.2 3*8*8 = 192, b 3*8*2 = 48
    assert macs(r, "forward") == 96 + 192 + 48
    # backward: b both gradients 2*48, a.2 both 2*192, a.0 weight gradient only 96
    assert macs(r, "backward") == 2 * 48 + 2 * 192 + 96
    # recompute: the checkpointed block's forward runs again in the backward. With early stop
    # (torch's default) it stops once the tensors the backward saved are back: a.0 (and the ReLU);
    # a.2's output is saved by nobody inside the block. Without early stop all of it: 96 + 192.
    assert macs(r, "recompute") == (96 if early_stop else 96 + 192)
    assert module_macs(r, "recompute", "a.0") == 96
    assert r.notes == ()  # stopping a recomputation early is not an error


@pytest.mark.parametrize("optimizer, per_element, per_parameter", [
    ("sgd", 1, 0),      # p.add_(grad, alpha=-lr)
    ("adam", 10, 1),    # step += 1; lerp_ 2; mul_ 1; addcmul_ 2; sqrt 1; div 1; add_(eps) 1; addcdiv_ 2
    ("adamw", 11, 1),   # Adam's plus the decoupled weight decay p.mul_(1 - lr*wd): 1
])
def test_optimizer_step(optimizer: str, per_element: int, per_parameter: int) -> None:
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    model[0].bias.requires_grad_(False)  # frozen: gets no gradient, the optimizer skips it
    r = count(model, torch.randn(N, 6), pass_="train", optimizer=optimizer)
    stepped = 6 * 5 + 5 * 2 + 2  # the parameters that received a gradient
    assert (macs(r, "optimizer"), extra(r, "optimizer")) == (0, per_element * stepped + 3 * per_parameter)
    # each parameter's update is attributed to the module holding it
    assert r.phases["optimizer"].per_module["0"].extra_flops == per_element * 30 + per_parameter
    assert r.phases["optimizer"].per_module["2"].extra_flops == per_element * 12 + 2 * per_parameter


# Per element of a (3, 4) weight and per parameter tensor, as torch 2.14's per-parameter loops run them
# on a first step (every ``add`` with ``alpha`` or ``value`` one FLOP an element; ``step += 1`` one per tensor).
@pytest.mark.parametrize("optimizer, per_element, per_parameter", [
    ("nadam", 12, 2),     # Adam's moments (lerp_ 2, mul_ 1, addcmul_ 2), div 1, sqrt 1, add_(eps) 1, two addcdiv_ 4;
                          # step and mu_product *= mu: 2
    ("radam", 8, 1),      # moments 5, the bias-corrected mean (div) 1; rho_t <= 5 on a first step: mul 1, add_ 1
    ("adamax", 8, 1),     # lerp_ 2, exp_inf.mul_ 1, abs 1, add_(eps) 1, maximum 1, addcdiv_ 2
    ("adagrad", 6, 1),    # addcmul_ 2, sqrt 1, add_(eps) 1, addcdiv_ 2
    ("adadelta", 13, 1),  # mul_ 1, addcmul_ 2, add(eps) 1, sqrt_ 1, add(eps) 1, sqrt_ 1, div_ 1, mul_ 1, mul_ 1
                          # (lr), addcmul_ 2, add_ 1
    ("rmsprop", 7, 1),    # mul_ 1, addcmul_ 2, sqrt 1, add_(eps) 1, addcdiv_ 2
    ("rprop", 11, 1),     # mul 1, sign 1, gt 1, lt 1, eq 1, mul_ 1, clamp_ 1, eq 1, sign 1, addcmul_ 2
    ("asgd", 2, 1),       # param.mul_(1 - lambd*eta) 1, add_(grad, alpha=-eta) 1; mu = 1: ax.copy_ 0
])
def test_each_torch_optimizer_step(optimizer: str, per_element: int, per_parameter: int) -> None:
    r = count(nn.Linear(4, 3, bias=False), torch.randn(N, 4), pass_="train", optimizer=optimizer)
    assert (macs(r, "optimizer"), extra(r, "optimizer")) == (0, per_element * 3 * 4 + per_parameter)


def test_adafactor_step_factors_its_second_moment() -> None:
    """torch's Adafactor keeps a (3, 4) weight's second moment as a row and a column variance
    and multiplies them back: its one product (3x1 @ 1x4, 12 MACs)."""
    rows, cols = 3, 4
    n = rows * cols
    r = count(nn.Linear(cols, rows, bias=False), torch.randn(N, cols), pass_="train", optimizer="adafactor")
    assert macs(r, "optimizer") == rows * cols
    assert extra(r, "optimizer") == (
        1                         # step += 1
        + 2 * n                   # alpha: the parameter's norm (a square and an add an element)
        + 2 * n + rows + rows     # row variance: the norm over each row, squared, divided by the width
        + 2 * rows                # ... and lerp_ into the running row variance
        + 2 * n + cols + cols     # column variance likewise
        + 2 * cols
        + rows                    # the row variance's mean (rows - 1 adds, a division)
        + 1                       # its clamp
        + 4 * n                   # var_estimate.div_, clamp_, rsqrt_, mul_(grad)
        + 2 * n                   # the update's norm (denominator)
        + n)                      # param.add_(update, alpha=-alpha*...)


def test_an_optimizer_of_the_users_own() -> None:
    """``module:function`` (a class here) and the function itself, called with the parameters that
    received a gradient; the step is attributed to the module holding each parameter."""
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    for optimizer in ("user_models:SignMomentum", "user_models:SignMomentum(lr=0.1)",
                      lambda params: __import__("user_models").SignMomentum(params)):
        r = count(model, torch.randn(N, 4), pass_="train", optimizer=optimizer)
        # 6 FLOPs an element (see user_models.SignMomentum) of 12 + 6 + 2 elements
        assert (macs(r, "optimizer"), extra(r, "optimizer")) == (0, 6 * (12 + 6 + 2))
        assert r.phases["optimizer"].per_module["0"].extra_flops == 6 * 12
        assert r.phases["optimizer"].per_module["2"].extra_flops == 6 * (6 + 2)
    assert r.pass_.options()["optimizer"].startswith("test_reference_train:test_an_optimizer_of_the_users_own")


def test_an_optimizers_temporaries_stay_with_their_parameter() -> None:
    """A temporary of one parameter's update (``update.sign_()``) is freed during the step, and a
    later parameter's state may be given its id: the temporary's operators still belong to the
    first parameter (before, about one count in eight moved them; 30 counts)."""
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.ReLU(), nn.Linear(3, 2))
    for _ in range(30):
        r = count(model, torch.randn(N, 4), pass_="train", optimizer="user_models:SignMomentum")
        per_module = r.phases["optimizer"].per_module
        assert (per_module["0"].extra_flops, per_module["2"].extra_flops) == (6 * 12, 6 * (6 + 2))


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon is torch 2.9's")
def test_a_list_of_optimizers_steps_each_muon_for_the_matrices() -> None:
    """Muon for the matrices and SGD for the rest, as Muon is trained. Muon orthogonalises a
    (3, 4) update by 5 Newton-Schulz steps of three products: X @ X.T (3x4 @ 4x3, 36 MACs), A @ A
    (3x3 @ 3x3, 27) and B @ X (3x3 @ 3x4, 36)."""
    def muon_and_sgd(params: list[torch.Tensor]) -> list[torch.optim.Optimizer]:
        return [torch.optim.Muon([p for p in params if p.ndim == 2]),
                torch.optim.SGD([p for p in params if p.ndim != 2])]

    r = count(nn.Linear(4, 3), torch.randn(N, 4), pass_="train", optimizer=muon_and_sgd)
    assert macs(r, "optimizer") == 5 * (36 + 27 + 36)
    assert r.phases["optimizer"].per_op["aten.add_.Tensor"].calls == 2  # SGD's bias update and Muon's weight's


class _ClippedSGD:
    """Not an optimizer: an object whose ``step()`` clips the gradients' norm, then steps SGD (as a
    training loop does with ``clip_grad_norm_``)."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        self.params, self.sgd = params, torch.optim.SGD(params, lr=0.1)

    def step(self) -> None:
        nn.utils.clip_grad_norm_(self.params, 1.0)
        self.sgd.step()


def test_a_step_that_clips_the_gradients_first() -> None:
    """Gradient clipping: each gradient's norm (2 an element, one list kernel over all of them: on
    the first parameter's module), the norm of the 3 norms (2*3), ``max_norm / (total + eps)`` (an
    add, a reciprocal and a mul), the clamp (1), the scaling (1 an element, one list kernel); then
    SGD (1 an element, per parameter)."""
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))
    r = count(model, torch.randn(N, 4), pass_="train", optimizer=_ClippedSGD)
    n = 12 + 3 + 6
    assert extra(r, "optimizer") == 2 * n + 2 * 3 + 3 + 1 + n + n
    per_module = r.phases["optimizer"].per_module
    assert per_module["2"].extra_flops == 6  # its SGD update; the list kernels are on module 0
    assert per_module["0"].extra_flops == extra(r, "optimizer") - 6


class _StepsLargerWeights(torch.optim.SGD):
    """Reads values: a parameter whose largest element passes 1 gets an extra scale (one mul an element)."""

    @torch.no_grad()
    def step(self, closure: object = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.abs().max() > 1:
                    p.grad.mul_(0.5)
        super().step()


def test_the_users_optimizer_steps_copies_of_the_parameters_with_their_values() -> None:
    """A branch on a value takes the way a real step would (only the large weight's gradient is
    scaled), and the model is left as it was."""
    model = nn.Sequential(nn.Linear(4, 3, bias=False), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(2.0)
        model[1].weight.fill_(0.5)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    r = count(model, torch.randn(N, 4), pass_="train", optimizer=lambda ps: _StepsLargerWeights(ps, lr=0.1))
    per_module = r.phases["optimizer"].per_module
    # abs 1 and max 1 an element for each; the large one: mul_ 1 more; SGD's update 1
    assert per_module["0"].extra_flops == 12 * (1 + 1 + 1 + 1)
    assert per_module["1"].extra_flops == 6 * (1 + 1 + 1)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def _returns_a_number(params: list[torch.Tensor]) -> int:
    return len(params)


class _HessianDiagonal(torch.optim.SGD):
    """Differentiates the gradients again (a Hutchinson estimate, as AdaHessian's)."""

    def step(self, closure: object = None) -> None:
        params = [p for g in self.param_groups for p in g["params"]]
        torch.autograd.grad([p.grad for p in params], params, [torch.ones_like(p) for p in params])


class _AsksForAClosure(torch.optim.SGD):
    def step(self, closure: object = None) -> None:
        if closure is None:
            raise ValueError("Requires closure (e.g. `optimizer.step(lambda: float(loss))`)")


def test_an_optimizer_that_cannot_step_says_why() -> None:
    model, x = nn.Linear(4, 3), torch.randn(N, 4)
    with pytest.raises(UserError, match=r"returned int, not an optimizer"):
        count(model, x, pass_="train", optimizer=_returns_a_number)
    with pytest.raises(UserError, match=r"LBFGS.step\(\) needs a closure"):
        count(model, x, pass_="train", optimizer="torch.optim:LBFGS")
    with pytest.raises(UserError, match=r"_AsksForAClosure.step\(\) needs a closure"):
        count(model, x, pass_="train", optimizer=lambda ps: _AsksForAClosure(ps))
    with pytest.raises(UserError, match=r"does not have a grad_fn \(its step differentiates the gradients again"):
        count(model, x, pass_="train", optimizer=lambda ps: _HessianDiagonal(ps))
    with pytest.raises(UserError, match=r"optimizer 'torch.optim:SGD\(lr=-1\)' raised: ValueError: Invalid learning rate"):
        count(model, x, pass_="train", optimizer="torch.optim:SGD(lr=-1)")
    with pytest.raises(UserError, match="invalid optimizer 'lion': choose one of sgd, adam"):
        count(model, x, pass_="train", optimizer="lion")
    with pytest.raises(UserError, match="has no attribute 'NoSuchOptimizer'"):
        count(model, x, pass_="train", optimizer="torch.optim:NoSuchOptimizer")


@pytest.mark.parametrize("optimizer", sorted(training.STEPS_ON_ITS_OWN_DEVICE))
def test_some_optimizers_step_a_large_parameter_on_its_device(monkeypatch: pytest.MonkeyPatch,
                                                              optimizer: str) -> None:
    """Where a step on meta is not the step on the parameter's device, no stand-in is on meta
    (another of torch's optimizers steps this parameter's on meta)."""
    large = nn.Parameter(torch.zeros(training.META_STAND_IN_NUMEL))
    large.grad = torch.ones_like(large)
    cls = getattr(torch.optim, OPTIMIZERS[optimizer])
    real_step, seen = cls.step, []

    def step(self: torch.optim.Optimizer, *args: object, **kwargs: object) -> object:
        seen.extend(p.device.type for g in self.param_groups for p in g["params"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(cls, "step", step)
    assert training.optimizer_step(optimizer, [("", large)], None) == 1
    assert seen == ["cpu"]


@pytest.mark.parametrize("optimizer", ["asgd", "adafactor"])
def test_an_optimizer_reading_values_says_so_on_meta(optimizer: str) -> None:
    """ASGD and Adafactor read a number with ``.item()`` in their step: a model on meta, whose
    parameters hold no values, cannot take their step."""
    with torch.device("meta"):
        on_meta = nn.Linear(4, 3)
    with pytest.raises(UserError, match=rf"optimizer '{optimizer}' reads a tensor's value in its step .*meta device"):
        count(on_meta, torch.randn(N, 4, device="meta"), pass_="train", optimizer=optimizer, device="meta")


@pytest.mark.parametrize("optimizer", [o for o in OPTIMIZERS if o not in training.STEPS_ON_ITS_OWN_DEVICE])
def test_meta_stand_ins_step_like_real_ones(monkeypatch: pytest.MonkeyPatch, optimizer: str) -> None:
    """Stepping every parameter's stand-in on meta records what stepping real stand-ins records:
    the same events (shapes, bytes, module, phase) in the same order."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 36, 3))
    model[0].weight.data = model[0].weight.data.to(memory_format=torch.channels_last)  # strides kept
    x = torch.randn(2, 3, 8, 8)
    counts = {}
    for numel in (0, 1 << 62):  # every stand-in on meta; every stand-in on the CPU
        monkeypatch.setattr(training, "META_STAND_IN_NUMEL", numel)
        counts[numel] = count(model, x, pass_="train", optimizer=optimizer)
    on_meta, on_cpu = counts.values()
    assert on_meta.events == on_cpu.events
    assert on_meta.phases == on_cpu.phases


def test_a_large_parameter_is_stood_in_for_on_meta() -> None:
    large = nn.Parameter(torch.zeros(training.META_STAND_IN_NUMEL // 2, 2))
    large.grad = torch.ones_like(large).t().contiguous().t()  # a gradient with other strides than its parameter's
    t = training.stand_in(large, large.grad)
    assert t.is_meta and t.grad.is_meta and t.requires_grad
    assert (t.shape, t.stride(), t.dtype) == (large.shape, large.stride(), large.dtype)
    assert (t.grad.shape, t.grad.stride()) == (large.grad.shape, large.grad.stride())
    small = nn.Parameter(torch.zeros(3, 2))
    small.grad = torch.ones_like(small)
    t = training.stand_in(small, small.grad)
    assert not t.is_meta and t.grad is small.grad and t is not small
    # a sparse gradient (nn.Embedding(sparse=True)) is stood in for on its own device, as it is
    sparse = nn.Parameter(torch.zeros(training.META_STAND_IN_NUMEL, 1))
    sparse.grad = torch.sparse_coo_tensor(torch.tensor([[0]]), torch.ones(1, 1), sparse.shape,
                                          check_invariants=True)
    t = training.stand_in(sparse, sparse.grad)
    assert not t.is_meta and t.grad is sparse.grad


def test_a_large_model_steps_without_copying_its_parameters() -> None:
    """An AdamW step of a large layer leaves no stand-in or optimizer state in memory: all on meta."""
    model = nn.Linear(1024, 1024)
    seen = []
    real_step = torch.optim.AdamW.step

    def step(self: torch.optim.AdamW, *args: object, **kwargs: object) -> object:
        out = real_step(self, *args, **kwargs)
        seen.extend((p.device.type, {k: v.device.type for k, v in self.state[p].items()})
                    for g in self.param_groups for p in g["params"])
        return out

    torch.optim.AdamW.step = step  # type: ignore[method-assign]
    try:
        r = count(model, torch.randn(N, 1024), pass_="train", optimizer="adamw")
    finally:
        torch.optim.AdamW.step = real_step  # type: ignore[method-assign]
    assert seen == [("meta", {"step": "cpu", "exp_avg": "meta", "exp_avg_sq": "meta"}),
                    ("cpu", {"step": "cpu", "exp_avg": "cpu", "exp_avg_sq": "cpu"})]  # the weight, then the bias
    assert r.phases["optimizer"].total.extra_flops == 11 * (1024 * 1024 + 1024) + 2


def test_backward_runs_where_its_forward_ran() -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.Tanh()), nn.Linear(8, 2))
    r = count(model, torch.randn(N, 6), pass_="train")
    for e in r.events:
        if e.phase == "backward" and e.forward_event >= 0:
            source = r.events[e.forward_event]
            assert source.phase in ("forward", "loss")
            assert (e.module_path, e.module_stack) == (source.module_path, source.module_stack)
    # the tanh gradient runs in "2.1", inside "2": inclusive per-module sums
    assert r.phases["backward"].per_module["2.1"].extra_flops == 2 * N * 8
    assert r.phases["backward"].per_module["2"].macs == 2 * N * 8 * 8


def test_the_model_is_left_as_it_was() -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 7.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad for p in model.parameters()]
    count(model, torch.randn(N, 6), pass_="train", optimizer="adam")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    assert model.training


def loss_first_row(output: torch.Tensor) -> torch.Tensor:
    return output[0].pow(2).sum()


def loss_not_scalar(output: torch.Tensor) -> torch.Tensor:
    return output


def test_a_user_loss() -> None:
    model = nn.Linear(6, 5, bias=False)
    r = count(model, torch.randn(N, 6), pass_="train", loss=f"{__name__}:loss_first_row")
    # loss: square 5 elements (5), sum them (4)
    assert extra(r, "loss") == 5 + 4
    # backward: pow's gradient 2*x*g, then the select's gradient routes it (no FLOPs): the product is
    # still the full 5x4 @ 4x6 weight gradient
    assert macs(r, "backward") == N * 6 * 5
    with pytest.raises(UserError, match="not a scalar tensor"):
        count(model, torch.randn(N, 6), pass_="train", loss=f"{__name__}:loss_not_scalar")
    with pytest.raises(UserError, match="has no attribute"):
        count(model, torch.randn(N, 6), pass_="train", loss=f"{__name__}:no_such_loss")
    with pytest.raises(UserError, match="need --pass train"):
        count(model, torch.randn(N, 6), loss=f"{__name__}:loss_first_row")


def test_a_model_without_trainable_parameters_has_no_backward() -> None:
    model = nn.Linear(6, 5).requires_grad_(False)
    r = count(model, torch.randn(N, 6), pass_="train", optimizer="sgd")
    # the default loss sums the outputs that need a gradient: there is none, so no loss either
    assert list(r.phases) == ["forward"]
    assert any("no backward pass" in n for n in r.notes)
    assert any("stepped nothing" in n for n in r.notes)


def test_meta_counts_a_step_like_cpu() -> None:
    def build() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 2))

    cpu = count(build(), torch.randn(N, 6), pass_="train", optimizer="adamw")
    with torch.device("meta"):
        model, x = build(), torch.randn(N, 6)
    meta = count(model, x, pass_="train", optimizer="adamw", device="meta")
    assert {p: (s.total.macs, s.total.extra_flops) for p, s in meta.phases.items()} == {
        p: (s.total.macs, s.total.extra_flops) for p, s in cpu.phases.items()}


@pytest.mark.parametrize("early_stop", [True, False])
def test_patched_calls_recorded_in_a_recomputation_are_recompute_events(early_stop: bool) -> None:
    """A counter that patches F.linear (calflops, DeepSpeed) sees the checkpointed block's calls again in
    the backward: the reference records those ``py:`` events in the recompute phase, not the forward."""
    x = torch.randn(3, 4)
    with set_checkpoint_early_stop(early_stop):
        r = count(Checkpointed(), x, pass_="train", patch=("torch.nn.functional.linear",))
    phases = [e.phase for e in r.events if e.op == "py:torch.nn.functional.linear"]
    # a.0, a.2, b; then a.0 and a.2 again (with early stop a.2's call starts, and its operator stops it)
    assert phases == ["forward"] * 3 + ["recompute"] * 2


class _ForcesInEvalMode(nn.Module):
    """An energy Linear(3, 1) summed over atoms, and its forces, the negative gradient of the energy
    with respect to the positions, taken with ``autograd.grad`` without ``create_graph``, as an
    interatomic potential (MACE) computes them outside training."""

    def __init__(self) -> None:
        super().__init__()
        self.energy = nn.Linear(3, 1)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        positions = positions.requires_grad_(True)
        energy = self.energy(positions).sum()
        (grad,) = torch.autograd.grad(energy, positions)
        return energy, -grad


def test_a_training_step_through_a_graph_the_forward_freed_says_so() -> None:
    """The forward took its forces with ``autograd.grad``, which freed the graph the training step's
    backward then needs: the error says the model's forward freed it, and how to count it."""
    from flopaudit.training import FREED_BY_THE_FORWARD

    with pytest.raises(RuntimeError, match="backward through the graph a second time") as raised:
        count(_ForcesInEvalMode(), torch.randn(4, 3), pass_="train")
    assert FREED_BY_THE_FORWARD in str(raised.value)
