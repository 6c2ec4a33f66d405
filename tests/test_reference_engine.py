"""Reference counter engine: module attribution, call counts, parameters,
unsupported operators, custom operators and module rules, bytes, and leaving
the model untouched."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from flopaudit.isolation import fingerprint
from flopaudit.reference import (
    Category,
    Cost,
    OpCall,
    count,
    register_formula,
    register_module_rule,
    temporary_formula,
    unregister_formula,
)
from flopaudit.reference.engine import record
from flopaudit.reference.events import ModuleCall, OpEvent, make_event, make_module_call
from flopaudit.reference.registry import formula_name, lookup


class Block(nn.Module):
    """fc (16 -> 16, no bias) then a functional ReLU in the block itself."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


class Net(nn.Module):
    """Block called twice (shared), then a head; matmul in the root's forward."""

    def __init__(self) -> None:
        super().__init__()
        self.block = Block()
        self.head = nn.Linear(16, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.block(x))
        x = x @ torch.ones(16, 16)
        return self.head(x)


ROWS = 3
FC = ROWS * 16 * 16
HEAD = ROWS * 16 * 4


def test_module_reused_twice_is_counted_twice() -> None:
    result = count(Net(), torch.randn(ROWS, 16))
    assert result.module_calls["block"] == 2
    assert result.module_calls["block.fc"] == 2
    assert result.module_calls[""] == 1
    assert result.per_module["block.fc"].macs == 2 * FC
    assert result.per_module["block"].macs == 2 * FC
    assert result.per_module["head"].macs == HEAD
    # the root includes its children and its own matmul
    assert result.per_module[""].macs == result.macs == 2 * FC + FC + HEAD


def test_events_carry_module_stack_and_leafness() -> None:
    result = count(Net(), torch.randn(ROWS, 16))
    mm = [e for e in result.events if e.op == "aten.mm.default"]
    fc_events = [e for e in mm if e.module_path == "block.fc"]
    assert len(fc_events) == 2
    assert fc_events[0].module_stack == ("", "block", "block.fc")
    assert fc_events[0].module_type == "Linear" and fc_events[0].in_leaf
    relu = [e for e in result.events if e.op == "aten.relu.default"]
    assert [(e.module_path, e.module_type, e.in_leaf) for e in relu] == [("block", "Block", False)] * 2
    root_mm = [e for e in mm if e.module_path == ""]
    assert len(root_mm) == 1 and root_mm[0].module_stack == ("",) and root_mm[0].macs == FC


class Tied(nn.Module):
    """Embedding and output projection share one (V, D) weight."""

    def __init__(self, vocab: int = 50, dim: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, vocab, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.out(self.proj(self.embed(tokens)))


def test_tied_weights_counted_once() -> None:
    vocab, dim = 50, 8
    model = Tied(vocab, dim)
    model.proj.bias.requires_grad_(False)
    result = count(model, torch.tensor([[1, 2, 3]]))
    assert result.params.unique == vocab * dim + dim * dim + dim
    assert result.params.total == 2 * vocab * dim + dim * dim + dim
    assert result.params.trainable == vocab * dim + dim * dim
    assert (result.params.shared_tensors, result.params.shared_elements) == (1, vocab * dim)
    assert result.macs == 3 * dim * dim + 3 * dim * vocab


# -- custom torch.library operators -------------------------------------------

@torch.library.custom_op("flopaudit_test::scaled_gemm", mutates_args=())
def scaled_gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 2.0 * (a @ b)


@scaled_gemm.register_fake
def _(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.new_empty(a.shape[0], b.shape[1])


@torch.library.custom_op("flopaudit_test::mystery", mutates_args=())
def mystery(x: torch.Tensor) -> torch.Tensor:
    return x.clone()


@mystery.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class CustomOps(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return mystery(mystery(scaled_gemm(a, b)))


def test_formula_less_custom_op_is_counted_through_its_python_kernel() -> None:
    """scaled_gemm's kernel dispatches mm + mul; mystery's only a clone (no cost): unsupported."""
    result = count(CustomOps(), (torch.randn(4, 6), torch.randn(6, 5)))
    assert result.traced_custom_ops == {"flopaudit_test.scaled_gemm.default": 1}
    assert result.macs == 4 * 6 * 5
    assert result.extra_flops == 4 * 5  # the scale
    assert result.unsupported == {"flopaudit_test.mystery.default": 2}
    unsupported = [e for e in result.events if not e.supported]
    assert len(unsupported) == 2 and all(e.category is None for e in unsupported)
    assert result.per_category["unsupported"].calls == 2
    assert any("mystery" in n and "no costed torch operator" in n for n in result.notes)


class Nms(nn.Module):
    """torchvision's C++ ``nms``: no formula, no Python kernel."""

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        import torchvision

        return torchvision.ops.nms(boxes, scores, 0.5)


def test_opaque_cpp_op_is_listed_never_silently_zero() -> None:
    import torchvision  # noqa: F401 - imported before the pass: importing it first runs an operator of its own

    boxes = torch.tensor([[0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 8.0, 8.0]])
    result = count(Nms(), (boxes, torch.tensor([0.9, 0.8])))
    assert result.unsupported == {"torchvision.nms.default": 1}


@torch.library.custom_op("flopaudit_test::numpy_gemm", mutates_args=())
def numpy_gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    out = a.new_empty(a.shape[0], b.shape[1])
    if bool(a[0, 0] > -1e30):  # a question asked of a tensor (one comparison), as bitsandbytes' gemv_4bit asks
        out.copy_(torch.from_numpy(a.numpy() @ b.numpy()))  # the product made outside torch
    return out


@numpy_gemm.register_fake
def _(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a.new_empty(a.shape[0], b.shape[1])


class NumpyGemm(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return numpy_gemm(a, b)


def test_a_custom_op_whose_kernel_does_its_work_outside_torch_is_unsupported_not_free() -> None:
    """Its kernel's torch operators (one comparison) cannot have made its 4 x 5 output."""
    result = count(NumpyGemm(), (torch.randn(4, 6), torch.randn(6, 5)))
    assert result.unsupported == {"flopaudit_test.numpy_gemm.default": 1} and result.traced_custom_ops == {}
    assert any("numpy_gemm" in n and "1 FLOPs for 20 output elements" in n for n in result.notes)


_PER_DEVICE = torch.library.Library("flopaudit_per_device", "DEF")
_PER_DEVICE.define("gemm(Tensor a, Tensor b) -> Tensor")


@torch.library.impl("flopaudit_per_device::gemm", "default", lib=_PER_DEVICE)
def _gemm_anywhere(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b


@torch.library.impl("flopaudit_per_device::gemm", "CPU", lib=_PER_DEVICE)
def _gemm_on_cpu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * 2.0) @ b / 2.0  # another kernel for CPU tensors, as optimum-quanto's qbytes_mm has


class PerDeviceGemm(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.ops.flopaudit_per_device.gemm(a, b)


def test_a_custom_op_is_traced_through_the_python_kernel_its_device_runs() -> None:
    """A ``torch.library.impl`` kernel for CPU wins over the ``default`` one, as in the dispatcher."""
    result = count(PerDeviceGemm(), (torch.randn(4, 6), torch.randn(6, 5)))
    assert result.traced_custom_ops == {"flopaudit_per_device.gemm.default": 1}
    assert result.macs == 4 * 6 * 5
    assert result.extra_flops == 4 * 6 + 4 * 5  # the CPU kernel's scale and unscale, which the default has not


def test_custom_op_with_registered_formula() -> None:
    @register_formula("flopaudit_test::scaled_gemm")
    def scaled_gemm_cost(call: OpCall) -> Cost:
        """(M, K) @ (K, N) then a scale: M*K*N MACs, M*N extra."""
        a, b = call.shape("a"), call.shape("b")
        return Cost(a[0] * a[1] * b[1], a[0] * b[1], Category.MATMUL)

    try:
        result = count(CustomOps(), (torch.randn(4, 6), torch.randn(6, 5)))
        assert result.macs == 4 * 6 * 5
        assert result.extra_flops == 4 * 5
        assert result.traced_custom_ops == {}  # the formula wins over tracing
        assert [e.formula.rsplit(".", 1)[-1] for e in result.events if e.macs] == ["scaled_gemm_cost"]
    finally:
        unregister_formula("flopaudit_test::scaled_gemm")
    assert count(CustomOps(), (torch.randn(4, 6), torch.randn(6, 5))).traced_custom_ops == {
        "flopaudit_test.scaled_gemm.default": 1}


def test_duplicate_formula_is_rejected_and_temporary_override_restores() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_formula(torch.ops.aten.mm)(lambda call: Cost(0, 0, Category.MATMUL))

    def doubled(call: OpCall) -> Cost:
        """Test override: twice the usual mm MACs."""
        a, b = call.shape("self"), call.shape("mat2")
        return Cost(2 * a[0] * a[1] * b[1], 0, Category.MATMUL)

    model = nn.Linear(16, 4, bias=False)
    with temporary_formula(torch.ops.aten.mm, doubled):
        assert count(model, torch.randn(3, 16)).macs == 2 * 3 * 16 * 4
    assert count(model, torch.randn(3, 16)).macs == 3 * 16 * 4


# -- module rules ----------------------------------------------------------------

def test_module_rule_replaces_the_inner_ops() -> None:
    def block_rule(module: nn.Module, args: tuple, output: torch.Tensor) -> Cost:
        return Cost(1000, 7, Category.MATMUL)

    with register_module_rule(Block, block_rule):
        result = count(Net(), torch.randn(ROWS, 16))
    ruled = [e for e in result.events if e.op == "module_rule:Block"]
    assert len(ruled) == 2 and all(e.module_path == "block" for e in ruled)
    assert not any(e.module_path == "block.fc" for e in result.events)
    assert result.macs == 2 * 1000 + FC + HEAD
    assert result.extra_flops == 2 * 7
    assert "block.fc" not in result.module_calls  # calls inside a ruled module are not recorded
    # the registration is gone after the block
    assert count(Net(), torch.randn(ROWS, 16)).macs == 2 * FC + FC + HEAD


def test_module_rule_duplicates_are_rejected() -> None:
    with register_module_rule(Block, lambda m, a, o: Cost(0, 0, Category.ZERO_COST)):
        with pytest.raises(ValueError, match="already registered"):
            register_module_rule(Block, lambda m, a, o: Cost(0, 0, Category.ZERO_COST))


# -- bytes -------------------------------------------------------------------------

def test_bytes_read_and_written() -> None:
    result = count(nn.Linear(16, 32, bias=False), torch.randn(4, 16))
    [mm] = [e for e in result.events if e.op == "aten.mm.default"]
    assert mm.bytes_read == (4 * 16 + 16 * 32) * 4
    assert mm.bytes_written == 4 * 32 * 4
    [t] = [e for e in result.events if e.op == "aten.t.default"]
    assert (t.bytes_read, t.bytes_written) == (0, 0)  # a view moves nothing
    assert result.totals.bytes_read == mm.bytes_read


# -- leaving the model alone ----------------------------------------------------------

class TrainNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def test_model_is_left_untouched_even_in_train_mode() -> None:
    model = TrainNet().train()
    before = fingerprint(model)
    count(model, torch.randn(2, 3, 8, 8))
    assert fingerprint(model) == before  # running stats restored, no hooks or attributes left


class Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")


@pytest.mark.filterwarnings("error")
def test_hooks_are_removed_when_forward_raises() -> None:
    model = Boom()
    before = fingerprint(model)
    with pytest.raises(RuntimeError, match="boom"):
        count(model, torch.randn(2, 4))
    assert fingerprint(model) == before


def test_fake_tensor_mode_counts_like_real_tensors() -> None:
    real = count(TrainNet().eval(), torch.randn(2, 3, 8, 8))
    with FakeTensorMode():
        model = TrainNet().eval()
        fake = count(model, torch.randn(2, 3, 8, 8))
    assert (fake.macs, fake.extra_flops) == (real.macs, real.extra_flops)
    assert fake.macs == 2 * 4 * 6 * 6 * 3 * 3 * 3


class Fallback(nn.Module):
    """The first branch raises inside a submodule; the root catches it and falls back."""

    def __init__(self) -> None:
        super().__init__()
        self.boom = Boom()
        self.fc = nn.Linear(4, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.boom(x)
        except RuntimeError:
            return self.fc(x)


@pytest.mark.filterwarnings("error")
def test_a_caught_exception_inside_forward_keeps_the_records_consistent() -> None:
    result = count(Fallback(), torch.randn(2, 4))
    assert result.macs == 2 * 4 * 4
    assert result.module_calls == {"": 1, "boom": 1, "fc": 1}
    assert all(call is not None for call in result.module_call_records)
    assert any("boom raised" in n for n in result.notes)


class BufferWriter(nn.Module):
    """Writes its buffers in eval mode: a counter (in place), a slice of a
    cache (through a view) and running statistics via ``F.batch_norm``."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("cache", torch.zeros(3, 4))
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("var", torch.ones(4))
        self.register_buffer("untouched", torch.full((2,), 7.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.cache[0].copy_(x[0])
        return F.batch_norm(x, self.mean, self.var, training=True) + self.untouched.sum()


def test_buffers_written_in_the_pass_are_put_back() -> None:
    model = BufferWriter().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 4) + 3.0
    count(model, x)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    model(x)  # the same pass outside the counter does change them: the test can fail
    assert not torch.equal(model.mean, before["mean"]) and int(model.calls) == 1


@pytest.mark.parametrize("pass_", ["inference", "train"])
def test_parameters_written_in_the_pass_are_put_back(pass_: str) -> None:
    # nn.Embedding(max_norm=...) renormalises the rows it looks up in place (through weight.detach())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 4, max_norm=0.5), nn.Flatten(), nn.Linear(12, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.tensor([[1, 2, 3], [3, 4, 5]])
    count(model, ids, pass_=pass_)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    model(ids)  # the same pass outside the counter does change the weight: the test can fail
    assert not torch.equal(model[0].weight, before["0.weight"])


class StorageSwap(nn.Module):
    """Gives its weight another storage (``weight.data = ...``, as re-parameterised blocks and
    compressai's masked convolution do) after a write to an activation has made the pass look
    its parameters' storages up, then writes in place to the weight's old storage."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x.add_(1)  # an activation written: the parameters' storages are looked up now
        old = self.weight.data
        self.weight.data = self.weight.data * 2
        old.mul_(3)  # the weight's old storage, not the weight any more
        return x * self.weight


def test_a_write_to_a_parameters_old_storage_is_not_a_write_to_it() -> None:
    # The pass must not save and put back the weight for a write to the storage it left (the
    # address can also be reused by a fresh tensor), and the trace's liveness must not take the
    # putting back for the model's work: the doubling only feeds weight.data, which a trace drops.
    from flopaudit.reference.liveness import LivenessMode, dead_events

    model, x = StorageSwap(), torch.randn(4)
    with LivenessMode(model, (x,)) as mode:
        result = count(model, x)
    doubled = [i for i, e in enumerate(result.events) if e.op == "aten.mul.Tensor" and e.arg("other") == 2]
    dead = dead_events(result.events, mode)
    assert len(doubled) == 1 and dead is not None and doubled[0] in dead
    assert torch.equal(model.weight.detach(), torch.ones(4))  # its own data back, as the pass found it
    model(x)  # the same pass outside the counter does change the weight: the assertion can fail
    assert torch.equal(model.weight.detach(), torch.full((4,), 2.0))


def test_a_count_gives_back_weights_a_forward_gave_other_data_and_table_entries() -> None:
    from flopaudit.zoo.hard.realworld import MomentumEncoder

    model = MomentumEncoder()
    model.register_buffer("seen", torch.zeros(1))

    def forward(im_q: torch.Tensor, im_k: torch.Tensor) -> torch.Tensor:
        model.seen = model.seen + 1  # a buffer table given another entry
        return MomentumEncoder.forward(model, im_q, im_k)

    model.forward = forward
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = [p for p in model.k.parameters()]
    inputs = (torch.randn(4, 8), torch.randn(4, 8))
    for pass_ in ("inference", "train"):
        count(model, inputs, pass_=pass_)
        assert [p for p in model.k.parameters()] == weights  # the same parameters, their own data back
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), (pass_, k)
    model(*inputs)  # the same pass outside the counter does change them: the assertions can fail
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert {"k.0.weight", "queue", "ptr", "seen"} <= set(changed)


def test_a_count_gives_back_the_attributes_a_forward_rebinds() -> None:
    from flopaudit.zoo.hard.realworld import FirstCallInit

    model, x = FirstCallInit(), torch.randn(16, 8)
    first = count(model, x)
    assert (model.calls, model.norm.initialized) == (0, False)
    assert not model.norm.loc.detach().any()  # its values too
    again = count(model, x)
    assert again.events == first.events  # a first call again, not the initialised path
    model(x)  # outside the counter the forward does change them: the assertions can fail
    assert (model.calls, model.norm.initialized) == (1, True) and model.norm.loc.detach().any()


class _WritesItsDict(nn.Module):
    """Keeps state by writing into its ``__dict__`` (and ``object.__setattr__``), past
    ``nn.Module.__setattr__``, and deletes an attribute and puts it back made again."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.tag = "fresh"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.__dict__["seen"] = self.__dict__.get("seen", 0) + 1
        object.__setattr__(self.linear, "scale", 2.0)
        del self.tag
        self.tag = "".join(["fre", "sh"])  # equal, another object
        self.linear._parameters["extra"] = nn.Parameter(torch.ones(1))
        return self.linear(x)


def test_a_count_gives_back_writes_past_the_module_setters() -> None:
    model = _WritesItsDict()
    before = {name: dict(vars(m)) for name, m in model.named_modules()}
    tag, params = model.tag, dict(model.linear._parameters)
    count(model, torch.randn(2, 4))
    assert {name: dict(vars(m)) for name, m in model.named_modules()} == before
    assert model.tag is tag and "seen" not in vars(model) and not hasattr(model.linear, "scale")
    assert dict(model.linear._parameters) == params
    model(torch.randn(2, 4))  # outside the counter they stay: the assertions can fail
    assert vars(model)["seen"] == 1 and model.linear.scale == 2.0 and "extra" in model.linear._parameters


def test_a_count_gives_back_a_weight_repacked_with_the_state_it_holds() -> None:
    from flopaudit.zoo.hard.realworld import RepacksWeightOnFirstCall

    model, x = RepacksWeightOnFirstCall(), torch.randn(4, 16)
    weight = model.weight.detach().clone()
    first = count(model, x)
    assert model.weight.state.packed is False and torch.equal(model.weight.detach(), weight)
    assert count(model, x).events == first.events  # a first call again (the old layout read as packed: fails)
    model(x)  # outside the counter it repacks: the assertions can fail
    assert model.weight.state.packed is True and model.weight.shape == (16, 8)


class _KeepsAttentionMaps(nn.Module):
    """Keeps every forward's attention map in a list attribute, for a plot."""

    def __init__(self) -> None:
        super().__init__()
        self.qk = nn.Linear(8, 16)
        self.maps: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k = self.qk(x).chunk(2, -1)
        attn = (q @ k.transpose(-2, -1)).softmax(-1)
        self.maps.append(attn.detach())
        return attn @ x


def test_a_count_gives_back_a_list_its_forward_appends_to() -> None:
    model, x = _KeepsAttentionMaps(), torch.randn(2, 4, 8)
    model(x)
    kept = list(model.maps)
    count(model, x)
    count(model, x, pass_="train")
    assert len(model.maps) == 1 and model.maps[0] is kept[0]
    model(x)  # outside the counter it appends: the assertion can fail
    assert len(model.maps) == 2


class _ThreadedBranches(nn.Module):
    """Two branches run in worker threads, as a parallel ensemble does."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Linear(16, 32), nn.ReLU())
        self.b = nn.Linear(16, 32)
        self.head = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            a, b = pool.submit(self.a, x), pool.submit(self.b, x)
            return self.head(a.result() + b.result())


def test_work_in_another_thread_is_named_never_silently_zero() -> None:
    """A dispatch mode records the thread it was entered in: the branches' operators are not seen, and
    the count says so (each outermost call an operator without a formula, a note); the main thread's
    frames are left alone (the head is the root's child, not a branch's)."""
    result = count(_ThreadedBranches(), torch.randn(4, 16))
    assert result.macs == 4 * 32 * 4  # the head only
    assert result.unsupported == {"in_another_thread:Sequential": 1, "in_another_thread:Linear": 1}
    assert sum("ran in another thread" in n for n in result.notes) == 2
    assert [c.path for c in result.module_call_records] == ["", "head"]
    assert [e.module_stack for e in result.events if e.op == "aten.addmm.default"] == [("", "head")]


class _AlikeCalls(nn.Module):
    """Calls that a cost key must tell apart: a tensor passed twice (its bytes
    count once), 2 against 2.0, and an in-place op that reshapes its input."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = x.clone()
        y.unsqueeze_(0)
        return x + x, x + x.clone(), x * 2, x * 2.0, y


def test_calls_priced_once_per_process_keep_what_tells_them_apart() -> None:
    for _ in range(2):  # the second count reuses what the first priced
        result = count(_AlikeCalls(), torch.randn(4, 4))
        events = {(e.op, e.bytes_read, e.op_args, e.input_shapes, e.output_shapes) for e in result.events}
        assert [type(e.arg("other")) for e in result.events if e.op == "aten.mul.Tensor"] == [int, float]
        assert ("aten.add.Tensor", 64, (("alpha", 1),), ((4, 4), (4, 4)), ((4, 4),)) in events  # x + x
        assert ("aten.add.Tensor", 128, (("alpha", 1),), ((4, 4), (4, 4)), ((4, 4),)) in events
        assert ("aten.unsqueeze_.default", 64, (("dim", 0),), ((4, 4),), ((1, 4, 4),)) in events  # shape before


@pytest.mark.parametrize("enabled", [True, False])
def test_a_count_leaves_the_garbage_collector_as_it_was(enabled: bool) -> None:
    import gc

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        count(Net(), torch.randn(ROWS, 16))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


class Flagged(nn.Module):
    def __init__(self, flag: object) -> None:
        super().__init__()
        self.flag = flag
        self.conv = nn.Conv2d(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def test_module_call_attributes_keep_their_types() -> None:
    """``True``, ``1`` and ``1.0`` are equal values, not the same attribute."""
    x = torch.randn(1, 4, 8, 8)
    for flag in (True, 1, 1.0, True):
        root = count(Flagged(flag), x).module_call_records[0]
        value = dict(root.attrs)["flag"]
        assert value == flag and type(value) is type(flag)


# -- the records' positional makers -------------------------------------------

def _distinct_values(cls: type) -> list[object]:
    """One value per field of ``cls``, no two alike (a field given another's value shows)."""
    import dataclasses

    return [f"{f.name}-value" for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("cls, make", [(OpEvent, make_event), (ModuleCall, make_module_call)],
                         ids=["OpEvent", "ModuleCall"])
def test_a_positional_maker_makes_what_the_dataclass_makes(cls: type, make: object) -> None:
    import dataclasses

    values = _distinct_values(cls)
    made = make(*values)  # type: ignore[operator]
    assert type(made) is cls
    assert made == cls(*values) and hash(made) == hash(cls(*values))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.phase = "changed"  # type: ignore[misc]


def test_the_recorder_puts_each_part_of_an_event_and_a_module_call_in_its_own_field() -> None:
    """A convolution inside a named block, recorded: each field by name against what it must hold."""
    model = nn.Sequential()
    model.add_module("block", nn.Sequential(nn.Conv2d(2, 4, 3, bias=False)))
    rec = record(model, (torch.randn(1, 2, 5, 5),))
    conv = next(e for e in rec.events if e.op == "aten.convolution.default")
    assert (conv.module_path, conv.module_type, conv.module_stack, conv.in_leaf) == \
        ("block.0", "Conv2d", ("", "block", "block.0"), True)
    assert (conv.category, conv.macs, conv.extra_flops) == (Category.CONV, 4 * 3 * 3 * 2 * 3 * 3, 0)
    assert (conv.input_shapes, conv.output_shapes) == (((1, 2, 5, 5), (4, 2, 3, 3)), ((1, 4, 3, 3),))
    assert (conv.bytes_read, conv.bytes_written) == ((50 + 72) * 4, 36 * 4)
    convolution = lookup(torch.ops.aten.convolution.default)
    assert conv.supported and conv.formula == formula_name(convolution) and conv.call_index == 2
    assert dict(conv.op_args)["stride"] == (1, 1) and conv.traced_from == conv.autograd_function == ""
    assert (conv.patched_in, conv.patched_stack, conv.phase, conv.forward_event, conv.operands) == \
        ("", (), "forward", -1, "")
    call = rec.calls[2]
    assert (call.path, call.module_type, call.module_class, call.stack, call.in_leaf) == \
        ("block.0", "Conv2d", "torch.nn.modules.conv.Conv2d", ("", "block", "block.0"), True)
    assert (call.input_shapes, call.output_shapes) == (((1, 2, 5, 5),), ((1, 4, 3, 3),))
    assert dict(call.attrs)["kernel_size"] == (3, 3) and call.param_shapes == (("weight", (4, 2, 3, 3)),)
    assert (call.events, call.parent, call.rule, call.aliases, call.phase) == \
        ((rec.events.index(conv), len(rec.events)), 1, "", (), "forward")


def test_events_say_whether_their_results_are_integers() -> None:
    class Indexing(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            index = torch.arange(x.shape[1] // 2) * 2  # an integer product
            return (x * 2)[:, index] > 0  # a float product, then a comparison (a boolean result)

    rec = record(Indexing(), (torch.randn(3, 4),))
    integer = {e.op: e.integer for e in rec.events if e.op in ("aten.mul.Tensor", "aten.gt.Scalar")}
    muls = [e.integer for e in rec.events if e.op == "aten.mul.Tensor"]
    assert sorted(muls) == [False, True]
    assert integer["aten.gt.Scalar"] is True


def test_composites_a_mode_receives_whole_are_decomposed_and_named() -> None:
    """Inside torch.inference_mode autograd does not decompose aten.conv2d or aten.layer_norm:
    the recorder decomposes them and names them on their parts; outside, nothing is named."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LayerNorm(4 * 6 * 6))
    x = torch.randn(2, 3, 8, 8)
    plain = record(model, (x,)).events
    with torch.inference_mode():
        whole = record(model, (x,)).events
    assert not any(e.decomposed_from for e in plain)
    parts = {e.op: e.decomposed_from for e in whole}
    assert parts["aten.convolution.default"] == "aten.conv2d.default"
    assert parts["aten.native_layer_norm.default"] == "aten.layer_norm.default"
    assert sum(e.macs for e in whole) == sum(e.macs for e in plain) == 2 * 4 * 6 * 6 * 3 * 3 * 3


def test_names_graph_code_calls_are_patched_only_for_graph_modules() -> None:
    """torch.fx's code calls F.linear as torch._C._nn.linear; torch hands the object found
    there to a tensor subclass's __torch_function__ as func, so that name is patched only
    for a model holding a graph module."""
    from flopaudit.reference.backend_rulesets.torchprofile import MATMUL_CALLS
    from flopaudit.reference.patching import GRAPH_CODE_NAMES
    from flopaudit.zoo.hard.structure import _FunctionalAttention, fx_traced

    assert "torch._C._nn.linear" in MATMUL_CALLS and "torch._C._nn.linear" in GRAPH_CODE_NAMES
    seen = []

    class Watch(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(torch._C._nn.linear)
            return F.linear(x, torch.ones(3, 4))

    original = torch._C._nn.linear
    events = record(Watch(), (torch.randn(2, 4),), patch=MATMUL_CALLS).events
    assert seen == [original] and [e.op for e in events if e.op.startswith("py:")] == ["py:torch.nn.functional.linear"]
    x = torch.randn(2, 6, 16)
    calls = [e.op for e in record(fx_traced(), (x,), patch=MATMUL_CALLS).events if e.op.startswith("py:")]
    assert calls == ["py:torch._C._nn.linear"] * 3
    calls = [e.op for e in record(_FunctionalAttention(), (x,), patch=MATMUL_CALLS).events if e.op.startswith("py:")]
    assert calls == ["py:torch.nn.functional.linear"] * 3
    assert torch._C._nn.linear is original


def test_names_a_model_module_imported_are_patched_for_trace_rulesets_only() -> None:
    """``from torch import einsum`` binds torch's function in the model's module, past a patch of
    torch.einsum: a trace sees the operator whatever its name, so the trace rulesets patch that
    binding too (under its own path) and put it back; a ruleset of a counter that patches
    torch.einsum itself does not list it, as that counter misses those calls."""
    from flopaudit.reference.backend_rulesets.calflops import CALFLOPS
    from flopaudit.reference.backend_rulesets.fvcore import EINSUM_CALLS, MATMUL_CALLS
    from flopaudit.reference.patching import imported_names
    from flopaudit.zoo.hard import structure

    assert imported_names("torch.einsum") in EINSUM_CALLS and imported_names("torch.matmul") in MATMUL_CALLS
    assert "torch.einsum" in CALFLOPS.patched_functions
    assert imported_names("torch.einsum") not in CALFLOPS.patched_functions
    assert imported_names("torch.Tensor.matmul") not in MATMUL_CALLS  # a method is not imported by name
    model, x = structure.ImportedNamesAttention(), torch.randn(2, 37, 21)
    calls = [e.op for e in record(model, (x,), patch=EINSUM_CALLS + MATMUL_CALLS).events if e.op.startswith("py:")]
    assert calls == ["py:torch.einsum@imported"] * 3 + ["py:torch.matmul@imported"]
    assert structure.einsum is torch.einsum and structure.matmul is torch.matmul  # put back
    calls = [e.op for e in record(model, (x,), patch=("torch.einsum", "torch.matmul")).events
             if e.op.startswith("py:")]
    assert calls == []  # a patch of the attribute alone misses them, as calflops does


def test_names_imported_are_found_among_any_module_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A module of the model holds names bound to None, to other objects (a proxy whose every
    attribute lookup raises) and to torch's functions: only the last are wrapped (a module-level
    None once made every ruleset recording fail)."""
    import sys
    import types

    from flopaudit.reference.backend_rulesets.fvcore import EINSUM_CALLS

    class Proxy:  # a lazy module proxy: every attribute lookup fails
        def __getattr__(self, name: str) -> None:
            raise RuntimeError(f"lazy import of {name} failed")

    module = types.ModuleType("flopaudit_test_user_module")
    module.einsum, module.nothing, module.answer, module.proxy = torch.einsum, None, 42, Proxy()

    class UserModel(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return module.einsum("ij,jk->ik", x, x.T)

    UserModel.__module__ = module.__name__
    monkeypatch.setitem(sys.modules, module.__name__, module)
    events = record(UserModel(), (torch.randn(3, 4),), patch=EINSUM_CALLS, as_traced=False).events
    assert [e.op for e in events if e.op.startswith("py:")] == ["py:torch.einsum@imported"]
    assert module.einsum is torch.einsum and module.nothing is None and module.answer == 42


def test_an_operator_with_a_kernel_for_every_backend_is_counted_through_it() -> None:
    """PyTorch's quantized_decomposed operators (a PT2E-quantized graph's quantize/dequantize) are
    Python kernels registered as CompositeExplicitAutograd: their multiplies and adds are recorded."""
    from flopaudit.zoo.hard.custom import QuantDequantLinear

    rec = record(QuantDequantLinear(), (torch.randn(4, 16),))
    assert set(rec.traced) == {"quantized_decomposed.quantize_per_tensor.default",
                               "quantized_decomposed.dequantize_per_tensor.default",
                               "quantized_decomposed.dequantize_per_channel.default"}
    inner = [e for e in rec.events if e.traced_from]
    assert inner and all(e.supported for e in rec.events)
    assert sum(e.extra_flops for e in inner if e.op.startswith("aten.mul")) >= 4 * 16 + 8 * 16


def test_the_model_is_told_it_is_traced_only_where_asked_and_only_its_own_code() -> None:
    """record(as_traced=...) notes where code outside torch asks torch.jit.is_tracing() and answers
    it so; torch's own code (F.interpolate asks too) gets torch's answer; the function is put back."""
    import flopaudit.zoo.hard.structure as structure

    original = torch.jit.is_tracing
    model, x = structure.TracingBranchWarp(), torch.randn(2, 3, 12, 12)
    assert record(model, (x,)).tracing_asked == {}  # not asked for: not watched
    eager = record(model, (x,), as_traced=False)
    traced = record(model, (x,), as_traced=True)
    site = "flopaudit.zoo.hard.structure:forward"
    assert eager.tracing_asked == traced.tracing_asked == {site: 1}
    assert "aten.affine_grid_generator.default" in {e.op for e in traced.events}
    assert "aten.affine_grid_generator.default" not in {e.op for e in eager.events}
    assert torch.jit.is_tracing is original and torch.jit._trace.is_tracing is original

    class Upsample(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.interpolate(x, scale_factor=2.0)  # asks torch.jit.is_tracing() itself

    assert record(Upsample(), (x,), as_traced=True).tracing_asked == {}


def test_a_function_apply_bound_at_import_is_tracked() -> None:
    """``_matmul = _MatmulFunction.apply`` at import holds torch's apply, past the recorder's wrapper
    of Function.apply: the name is wrapped in the model's modules too (in recordings made for the
    trace rulesets, which read OpEvent.autograd_function), and put back."""
    from flopaudit.reference.backend_rulesets.fvcore import EINSUM_CALLS
    from flopaudit.zoo.hard import custom

    before = custom._matmul
    events = record(custom.BoundAutogradFunctionModel(), (torch.randn(4, 16),), patch=EINSUM_CALLS).events
    (mm,) = [e for e in events if e.op == "aten.mm.default"]
    assert mm.autograd_function == "_MatmulFunction"
    assert custom._matmul is before


class CondOperator(nn.Module):
    """Calls the ``cond`` higher-order operator itself (as code reaching it past ``torch.cond`` does)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torch._higher_order_ops.cond import cond_op

        return cond_op(x.sum() > 0, lambda t: self.fc(t), lambda t: t * 2, (x,))


@pytest.mark.parametrize("sign", [1, -1])
def test_the_cond_operator_is_control_flow_not_an_opaque_op(sign: int) -> None:
    # torch's dense cond kernel refuses to run under a dispatch mode; the branch it takes is
    # recorded as the model's own operators (not traced_from an opaque op, not unsupported)
    result = count(CondOperator(), sign * torch.rand(4, 8))
    assert result.macs == (4 * 8 * 8 if sign > 0 else 0)
    assert not result.unsupported and not result.traced_custom_ops
    assert not any(e.traced_from for e in result.events)


def test_a_copy_kept_after_the_pass_keeps_no_hook_of_the_recording() -> None:
    """A module copied in the forward is recorded as a copy, and carries none of the recording's hooks
    afterwards (here a cache outside the model keeps it): a later recording without hooks sees a plain
    module outside the model."""
    import copy

    kept: list[nn.Module] = []

    class CopiesItsLayer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            twin = copy.deepcopy(self.fc)
            kept.append(twin)
            return twin(x)

    model, x = CopiesItsLayer(), torch.randn(2, 4)
    hooked = record(model, (x,), module_hooks=True)
    assert [(c.path, c.copied) for c in hooked.calls] == [("", False), ("fc", True)]
    assert all(e.in_hooked_copy for e in hooked.events if e.macs)
    assert not kept[0]._forward_hooks
    plain = record(model, (x,))
    assert [(c.path, c.copied) for c in plain.calls] == [("", False)] and plain.outside_calls == 1
    assert not any(e.in_hooked_copy for e in plain.events)
