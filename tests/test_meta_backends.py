"""Which backends count on the meta device, checked against what each does there.

A backend is allowed on meta (its descriptor's ``meta``) where it gives there the count it gives
on CPU. These tests run the backends themselves on a model built on meta and on the same model on
CPU: what the descriptors claim is what the counters do, so a new release of one that changes its
behaviour on meta fails here. Expected MACs are derived from the layers' shapes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flopaudit import audit
from flopaudit.adapters import backends, get_adapter, get_backend
from flopaudit.records import Status
from flopaudit.zoo import get_case


class Block(nn.Module):
    """LayerNorm(32), Linear(32, 64), GELU, Linear(64, 32) and a residual on (4, 10, 32): a
    transformer's MLP block, without a convolution."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(32)
        self.up = nn.Linear(32, 64)
        self.act = nn.GELU()
        self.down = nn.Linear(64, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.act(self.up(self.norm(x))))


LINEAR_MACS = 4 * 10 * (32 * 64 + 64 * 32)
PARAMS = 2 * 32 + (32 * 64 + 64) + (64 * 32 + 32)


def _on_meta(make: type[nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return make().eval()


#: The backends probed on meta and allowed there.
ALLOWED = ("calflops", "fvcore", "torchprofile", "pytorch-model-summary")


@pytest.mark.parametrize("backend", ALLOWED)
def test_an_allowed_backend_counts_the_same_on_meta_as_on_cpu(backend: str) -> None:
    assert get_backend(backend).meta.allowed
    adapter = get_adapter(backend)
    cpu = adapter.count(Block().eval(), torch.randn(4, 10, 32))
    meta = adapter.count(_on_meta(Block), torch.empty(4, 10, 32, device="meta"))
    assert cpu.status is meta.status is Status.OK, (cpu.error, meta.error)
    assert (meta.macs, meta.params) == (cpu.macs, cpu.params)
    assert meta.params == PARAMS
    if backend != "pytorch-model-summary":  # (which counts parameters only)
        assert LINEAR_MACS <= meta.macs < LINEAR_MACS * 1.1  # the products, plus what each adds for norm and bias


class DiscardsAfterNorm(nn.Module):
    """BatchNorm1d(8) (whose meta outputs the recorder builds by a shortcut), a product the forward
    discards (a JIT trace drops it), then Linear(8, 4), on (4, 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        _ = h * h
        return self.fc(h)


def test_the_work_a_trace_drops_is_found_on_meta_as_on_the_cpu() -> None:
    """The reference predicts a tracing counter's count without the work the trace drops, found by
    a dispatch mode entered outside its recorder; on meta, the operators the recorder builds by a
    shortcut (batch norms) reach that mode too, so the prediction on meta is the CPU's."""
    from flopaudit.reference.liveness import REASON

    adapter = get_adapter("reference")
    cpu = adapter.count(DiscardsAfterNorm().eval(), torch.randn(4, 8))
    meta = adapter.count(_on_meta(DiscardsAfterNorm), torch.empty(4, 8, device="meta"))
    assert cpu.status is meta.status is Status.OK, (cpu.error, meta.error)
    on_cpu, on_meta = cpu.prediction("torchprofile"), meta.prediction("torchprofile")
    assert on_cpu is not None and on_meta is not None
    assert [(c.rule, c.macs) for c in on_cpu.contributions if c.rule == REASON] == [(REASON, -4 * 8)]
    assert (on_meta.macs, on_meta.contributions) == (on_cpu.macs, on_cpu.contributions)


@pytest.mark.parametrize("backend", ["deepspeed", "torch-profiler"])
def test_a_refused_backend_does_count_otherwise_on_meta(backend: str) -> None:
    """The reason its descriptor gives holds: on Linear(32, 64) over (4, 10, 32) it reads another count
    on meta than on CPU."""
    assert not get_backend(backend).meta.allowed
    adapter = get_adapter(backend)
    with torch.device("meta"):
        on_meta = nn.Linear(32, 64)
    cpu = adapter.count(nn.Linear(32, 64), torch.randn(4, 10, 32))
    meta = adapter.count(on_meta, torch.empty(4, 10, 32, device="meta"))
    assert cpu.status is meta.status is Status.OK, (cpu.error, meta.error)
    assert cpu.macs == 4 * 10 * 32 * 64
    assert meta.macs >= 2 * cpu.macs


@pytest.mark.parametrize("backend", ["fvcore", "torchprofile"])
def test_a_traced_convolution_on_meta_is_not_applicable_with_the_reason(backend: str) -> None:
    model = _on_meta(lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU()))  # type: ignore[arg-type, return-value]
    result = get_adapter(backend).count(model, torch.empty(1, 3, 8, 8, device="meta"))
    assert result.status is Status.NOT_APPLICABLE, result.error
    assert result.error == ("cannot count on the meta device: a JIT trace of a convolution fails on meta tensors "
                            "(TypeError: cond must be a bool, but got a Tensor)")


def test_every_backend_says_how_it_fares_on_meta() -> None:
    """Each backend of this environment was probed on meta: none is left with the default verdict."""
    unprobed = [name for name, b in backends().items()
                if b.meta.note == "this backend was not probed on the meta device" and name != "torch-summary"]
    assert unprobed == []


def test_calflops_on_meta_sees_the_functions_torchs_meta_kernels_call() -> None:
    """torch.cdist of 32 points: on CPU ATen computes it in C++ (calflops, which patches torch.matmul,
    misses its product); on meta a Python meta kernel computes it through torch.matmul, which calflops
    counts. The reference records that call on meta too, so calflops' count there is predicted (the
    zoo's knn-point-grouping: cdist's product 2 x 32 x 32 x (3 + 2) on top of the edge convolution)."""
    model, inputs = get_case("knn-point-grouping").instantiate()
    with torch.device("meta"):
        on_meta, _ = get_case("knn-point-grouping").instantiate()
    frame = audit(on_meta, inputs.to("meta"), backends=["reference", "calflops"]).set_index("backend")
    reference, calflops = frame.loc["reference"], frame.loc["calflops"]
    edge_conv = 2 * 16 * 32 * 4 * 6
    assert reference["macs"] == calflops["macs"] == 2 * 32 * 32 * (3 + 2) + edge_conv
    assert calflops["classification"] != "unexplained", calflops["causes"]
    cpu = audit(model, inputs, backends=["calflops"]).set_index("backend").loc["calflops"]
    assert cpu["macs"] == edge_conv


class StrayCpuParameter(nn.Module):
    """Built under ``torch.device("meta")``, but its first parameter made with ``torch.Tensor(n)``, which
    ignores the default device (as transformers' Wav2Vec2 makes ``masked_spec_embed``)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.Tensor(8).uniform_())
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_calflops_moving_a_model_off_meta_names_the_parameter() -> None:
    with torch.device("meta"):
        model = StrayCpuParameter()
    assert model.embed.device.type == "cpu" and model.fc.weight.is_meta
    result = get_adapter("calflops").count(model, torch.empty(2, 8, device="meta"))
    assert result.status is Status.ERROR
    assert result.error.startswith("BackendFailure: NotImplementedError: Cannot copy out of meta tensor"), result.error
    assert ("calflops moves the model to the device of its first parameter ('embed', on cpu), and its other "
            "parameters are on the meta device") in result.error


def test_a_backend_that_is_not_installed_says_so_on_meta_too() -> None:
    """On meta a backend missing here says it is missing (as on the CPU), not that it was not probed
    there: installing it is the first thing to do either way."""
    from flopaudit.adapters import backend_names, get_backend
    from flopaudit.execution.work import count_on_meta
    from flopaudit.inputs import ModelInputs

    missing = [name for name in backend_names() if not get_backend(name).available()]
    if not missing:
        pytest.skip("every backend is installed here")
    with torch.device("meta"):
        model = torch.nn.Linear(4, 2)
    for name in missing:
        r = count_on_meta(name, model, ModelInputs((torch.empty(3, 4, device="meta"),), {}), isolate=False)
        assert r.status.value == "not applicable" and r.error == get_backend(name).missing_reason(), (name, r.error)
