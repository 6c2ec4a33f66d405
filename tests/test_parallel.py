"""Parallel, Dask, sharded, memory-capped and meta-device audits."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fake_backends import FAKES, KilledAdapter, _Fake, fake, registered
from torch import nn

from flopaudit import adapters
from flopaudit.adapters.base import RawCount
from flopaudit.cli import main
from flopaudit.errors import UserError
from flopaudit.execution import CaseRef
from flopaudit.execution.work import count_one
from flopaudit.inputs import ModelInputs
from flopaudit.records import AuditRun, Status
from flopaudit.run import run_audit
from flopaudit.zoo import all_cases, select_cases
from flopaudit.zoo.case import ModelCase, tensor_inputs

SMALL = ["linear-3d", "conv2d-bias", "tied-weights"]
BACKENDS = ["reference", "thop", "torch-flop-counter"]


class HogAdapter(_Fake):
    """Allocates 2 GiB: only a --max-memory cap stops it."""

    backend = fake("fake-hog", "HogAdapter")

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        hog = torch.ones(512 * 1024 * 1024)  # 512 Mi float32 = 2 GiB
        return RawCount(raw_total=int(hog[0]), macs=1)


@pytest.fixture()
def fake_backends() -> Iterator[None]:
    with registered({**FAKES, HogAdapter.backend: __name__, KilledAdapter.backend: "fake_backends"}):
        yield


def comparable(run: AuditRun) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Everything but the timings."""
    results = [{k: v for k, v in r.to_dict().items() if k != "elapsed_s"} for r in run.results]
    cases = [{k: v for k, v in c.to_dict().items() if k != "forward_s"} for c in run.cases]
    return results, cases


@functools.lru_cache(maxsize=1)
def serial_small() -> AuditRun:
    return run_audit([CaseRef(i) for i in SMALL], BACKENDS, jobs=1)


def test_serial_run_counts_the_small_cases() -> None:
    run = serial_small()
    assert [(r.model, r.backend) for r in run.results] == [(m, b) for m in SMALL for b in BACKENDS]
    ref = {r.model: r.macs for r in run.results if r.backend == "reference"}
    assert ref == {
        "linear-3d": 2 * 10 * 16 * 32,
        "conv2d-bias": 2 * 8 * 16 * 16 * 3 * 3 * 3,
        "tied-weights": 2 * 12 * 16 * 100,
    }


def test_process_pool_gives_the_serial_results_in_the_serial_order() -> None:
    parallel = run_audit([CaseRef(i) for i in SMALL], BACKENDS, jobs=2)
    assert comparable(parallel) == comparable(serial_small())
    assert all(c.forward_s is not None for c in parallel.cases)


def test_dask_cluster_gives_the_serial_results() -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            run = run_audit([CaseRef(i) for i in SMALL], BACKENDS, executor=client.get_executor(pure=False))
    assert comparable(run) == comparable(serial_small())


def test_cli_counts_on_a_dask_scheduler(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        rc = main(["run", "--dask-scheduler", cluster.scheduler_address, "--models", "linear-3d",
                   "--backends", "reference", "--no-cache", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    assert "10.240K (1.000x)" in capsys.readouterr().out  # 2 x 10 x 16 x 32 MACs


def test_failures_in_workers_become_statuses(fake_backends: None) -> None:
    cases = [CaseRef("linear-3d"), CaseRef("conv2d-bias")]
    names = ["fake-raise", "fake-hang", "fake-crash", "fake-noisy"]
    progress: list[tuple[str, str, str]] = []
    run = run_audit(cases, names, jobs=2, timeout=2,
                    progress=lambda m, b, r: progress.append((m, b, r.status.value)) if r else None)
    statuses = [(r.model, r.backend, r.status.value) for r in run.results]
    expected = [(m, b, s) for m in ("linear-3d", "conv2d-bias")
                for b, s in zip(names, ["error", "timeout", "error", "ok"])]
    assert statuses == expected
    assert sorted(progress) == sorted(expected)  # one update per count, as each completes
    assert "SIGSEGV" in (run.result("linear-3d", "fake-crash").error or "")
    assert "backend exploded" in (run.result("conv2d-bias", "fake-raise").error or "")


def test_rejected_inputs_in_a_worker_are_a_user_error() -> None:
    with pytest.raises(UserError, match=r"'user_models:tiny_linear' rejected input \(1x5\)"):
        run_audit([CaseRef("user_models:tiny_linear", (1, 5))], ["reference", "thop"], jobs=2,
                  strict_inputs=True)


def test_a_case_that_cannot_be_pickled_is_counted_by_workers_forked_from_here() -> None:
    case = ModelCase("local", lambda: nn.Linear(4, 2, bias=False), tensor_inputs(3, 4))
    run = run_audit([case], ["reference", "thop"], jobs=2)
    assert [r.macs for r in run.results] == [3 * 4 * 2, 3 * 4 * 2]


def test_a_worker_that_dies_costs_only_its_own_count(fake_backends: None) -> None:
    run = run_audit([CaseRef("linear-3d")], ["fake-crash", "fake-noisy", "reference"], jobs=1)
    crash, noisy, ref = run.results
    assert crash.status is Status.ERROR and "signal SIGSEGV" in (crash.error or "")
    assert noisy.status is Status.OK and noisy.macs == 7
    assert ref.status is Status.OK and ref.macs == 2 * 10 * 16 * 32  # linear-3d: Linear(16, 32) on (2, 10, 16)


# -- memory guard ----------------------------------------------------------


def test_memory_cap_turns_a_hog_into_an_error(fake_backends: None) -> None:
    r = count_one("fake-hog", nn.Linear(4, 2), torch.randn(1, 4), timeout=60, max_memory_gb=0.5)
    assert r.status is Status.ERROR
    assert (r.error or "").startswith("exceeded the memory limit of 0.5 GiB (--max-memory)")


OOM_KILLER = "not by flopaudit: the system's out-of-memory killer ends a process this way"


def test_a_count_killed_from_outside_names_the_out_of_memory_killer(fake_backends: None) -> None:
    alone = count_one("fake-killed", nn.Linear(4, 2), torch.randn(1, 4), timeout=60)
    capped = count_one("fake-killed", nn.Linear(4, 2), torch.randn(1, 4), timeout=60, max_memory_gb=8)
    run = run_audit([CaseRef("linear-3d")], ["fake-killed", "reference"], jobs=1)
    in_worker = run.result("linear-3d", "fake-killed")
    for r in (alone, in_worker):
        assert r.status is Status.ERROR
        assert "died with signal SIGKILL" in (r.error or "") and OOM_KILLER in (r.error or ""), r.error
        assert "with --max-memory GB a count that needs more fails with a memory error instead" in (r.error or "")
    assert capped.status is Status.ERROR and OOM_KILLER not in (capped.error or "")
    assert "a count over the --max-memory limit of 8 GiB can end this way" in (capped.error or "")
    assert run.result("linear-3d", "reference").status is Status.OK


def test_a_crash_that_is_not_a_kill_gets_no_memory_note(fake_backends: None) -> None:
    r = count_one("fake-crash", nn.Linear(4, 2), torch.randn(1, 4), timeout=60)
    assert r.error == "the counting process died with signal SIGSEGV"


def test_memory_cap_leaves_a_small_count_alone() -> None:
    r = count_one("reference", nn.Linear(4, 2, bias=False), torch.randn(3, 4), timeout=60, max_memory_gb=0.5)
    assert r.status is Status.OK and r.macs == 3 * 4 * 2


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_bad_max_memory_is_a_user_error(capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert main(["run", "--models", "linear-3d", "--max-memory", value]) == 2
    assert f"invalid --max-memory {value!r}" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "two"])
def test_bad_jobs_is_a_user_error(capsys: pytest.CaptureFixture[str], value: str) -> None:
    assert main(["run", "--models", "linear-3d", "--jobs", value]) == 2
    assert f"invalid --jobs {value!r}" in capsys.readouterr().err


# -- shards ------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("full", [False, True], ids=["default", "full"])
def test_shards_partition_the_selection(n: int, full: bool) -> None:
    whole = [c.id for c in select_cases(full=full)]
    parts = [[c.id for c in select_cases(full=full, shard=(i, n))] for i in range(1, n + 1)]
    flat = [cid for part in parts for cid in part]
    assert sorted(flat) == sorted(whole)  # every case once, none twice
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts == [[c.id for c in select_cases(full=full, shard=(i, n))] for i in range(1, n + 1)]


def test_shards_of_a_tag_selection_partition_it() -> None:
    whole = {c.id for c in select_cases(tags=["conv"])}
    parts = [{c.id for c in select_cases(tags=["conv"], shard=(i, 2))} for i in (1, 2)]
    assert parts[0] | parts[1] == whole and not parts[0] & parts[1]


# -- meta device -------------------------------------------------------------


def huge_linear() -> nn.Module:
    """10^10 weights (40 GB in float32): only the meta device can hold it."""
    return nn.Linear(100_000, 100_000, bias=False)


def test_meta_counts_a_model_bigger_than_memory() -> None:
    case = ModelCase("huge-linear", huge_linear, tensor_inputs(2, 100_000))
    run = run_audit([case], ["reference", "torch-flop-counter", "fvcore"], meta=True, jobs=1)
    ref, tfc, fv = run.results
    assert ref.status is Status.OK and ref.macs == 2 * 100_000 * 100_000
    assert tfc.status is Status.OK and tfc.macs == 2 * 100_000 * 100_000
    assert ("device", "'meta'") in ref.options
    assert any("meta device" in w for w in tfc.warnings)  # its dispatch note
    assert fv.status is Status.OK and fv.macs == 2 * 100_000 * 100_000  # fvcore's trace of a linear layer runs on meta
    assert dict(run.environment)["device"] == "meta"
    assert run.cases[0].forward_s is None and run.cases[0].inputs == "(2x100000)"


class WidthFromTensor(nn.Module):
    """Derives its width from tensor values in __init__ (like torchvision's RegNet): no build on meta."""

    def __init__(self) -> None:
        super().__init__()
        width = int(torch.tensor([6.0]).mul(2).round().tolist()[0])  # 12
        self.fc = nn.Linear(8, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


def test_meta_falls_back_to_empty_weights_for_value_reading_constructors() -> None:
    case = ModelCase("width-from-tensor", WidthFromTensor, tensor_inputs(3, 8))
    (r,) = run_audit([case], ["reference"], meta=True, jobs=1).results
    assert r.status is Status.OK and r.macs == 3 * 8 * 12
    assert any("built with empty_weights()" in w for w in r.warnings)


def test_meta_needs_a_forward_that_reads_no_values() -> None:
    run = run_audit([CaseRef("data-dependent-branch")], ["reference"], meta=True, jobs=1)
    (r,) = run.results
    assert r.status is Status.ERROR and "on the meta device" in (r.error or "")


def test_meta_in_workers_matches_meta_in_series() -> None:
    cases = [CaseRef("linear-3d"), CaseRef("conv2d-bias")]
    serial = run_audit(cases, ["reference", "fvcore"], meta=True, jobs=1)
    parallel = run_audit(cases, ["reference", "fvcore"], meta=True, jobs=2)
    assert comparable(serial) == comparable(parallel)
    # fvcore counts the linear layer on meta; its trace of a convolution fails there: not applicable
    assert [r.status for r in serial.results] == [Status.OK, Status.OK, Status.OK, Status.NOT_APPLICABLE]


def test_meta_verdicts_come_from_the_descriptors() -> None:
    described = adapters.backends()
    assert described["reference"].meta.allowed and not described["deepspeed"].meta.allowed
    assert not described["ptflops-pytorch"].meta.allowed and described["torch-flop-counter"].meta.note


def test_cli_meta_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["run", "--meta", "--models", "linear-3d", "conv2d-bias", "--backends", "reference", "fvcore",
               "--jobs", "1", "--no-cache", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert ("conv2d-bias / fvcore: not applicable: cannot count on the meta device: a JIT trace of a convolution "
            "fails on meta tensors (TypeError: cond must be a bool, but got a Tensor)") in out
    assert "linear-3d / fvcore" not in out  # counted
    assert (tmp_path / "results.json").exists()


def test_default_jobs_is_the_usable_cores() -> None:
    from flopaudit.run_defaults import usable_cores

    assert usable_cores() == len(os.sched_getaffinity(0))


def test_zoo_ids_are_plain_names() -> None:
    # CaseRef.resolve() looks ids up by exact name: none may look like a spec or a glob.
    assert not [c.id for c in all_cases() if set(c.id) & set(":*?[")]


def test_a_module_missing_on_an_executors_worker_says_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster, a model module that only this machine has is reported as missing on the worker."""
    import concurrent.futures

    from flopaudit.execution.dask import execute_task

    real = execute_task

    def elsewhere(task: Any) -> Any:  # the executor's worker runs without the model's directory on sys.path
        monkeypatch.delitem(__import__("sys").modules, "only_here_models", raising=False)
        monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p != str(tmp_path)])
        return real(task)

    (tmp_path / "only_here_models.py").write_text("from torch import nn\ndef build():\n    return nn.Linear(4, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr("flopaudit.execution.dask.execute_task", elsewhere)
    with concurrent.futures.ThreadPoolExecutor(1) as pool, pytest.raises(UserError) as exc:
        run_audit([CaseRef("only_here_models:build", (1, 4))], ["reference"], executor=pool, strict_inputs=True)
    assert "cannot import module 'only_here_models'" in str(exc.value)
    assert "on worker" in str(exc.value) and "importable on every worker" in str(exc.value)


@pytest.mark.parametrize("mode", ["workers", "no isolation", "dask"])
def test_torch_settings_a_case_changes_do_not_reach_the_next_case(mode: str) -> None:
    """A factory that makes float64 torch's default dtype (and asks for deterministic algorithms)
    once did so for every case built after it in the same process: the same Linear(4, 2) then
    read twice the bytes it reads counted alone. Each case is now built with the settings the
    process started with, and a run in this process leaves them as they were."""
    refs = [CaseRef("user_models:float64_by_default", input_shape=(3, 4)),
            CaseRef("user_models:tiny_linear", input_shape=(3, 4))]
    if mode == "dask":
        distributed = pytest.importorskip("distributed")
        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                      host="127.0.0.1", dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                run = run_audit(refs, ["reference"], executor=client.get_executor(pure=False))
    else:
        run = run_audit(refs, ["reference"], jobs=1, isolate=mode == "workers")
    read = {r.model: dict(r.extra)["bytes_read"] for r in run.results}
    # input (3, 4) and weight (2, 4): 20 elements read, 8 bytes each in float64, 4 in float32
    assert read == {"user_models:float64_by_default": 20 * 8, "user_models:tiny_linear": 20 * 4}
    assert torch.get_default_dtype() is torch.float32 and not torch.are_deterministic_algorithms_enabled()


def test_a_case_whose_code_patched_torch_does_not_share_a_worker_with_the_next(tmp_path: Path) -> None:
    """Cases are counted as they would be alone: one whose factory replaced F.linear (its count has
    the doubling ``mul``) is followed, in a run with one worker, by a plain Linear without it."""
    run = run_audit([CaseRef("user_models:patches_linear", input_shape=(3, 4)),
                     CaseRef("user_models:tiny_linear", input_shape=(3, 4))], ["reference"], jobs=1)
    ops = {r.model: dict(r.per_op) for r in run.results}
    assert "aten.mul.Tensor" in ops["user_models:patches_linear"]
    assert "aten.mul.Tensor" not in ops["user_models:tiny_linear"] and set(ops["user_models:tiny_linear"]) >= {
        "aten.mm.default"}


def test_every_setting_taken_is_put_back() -> None:
    from flopaudit.execution.torch_state import settings_now

    start = settings_now()
    try:
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.set_anomaly_enabled(True)
        torch.set_float32_matmul_precision("medium")
        torch.backends.mha.set_fastpath_enabled(False)
        torch.set_default_device("meta")
    finally:
        changed = start.restore()
    assert sorted(changed) == sorted(name for name, *_ in start.values) and start.restore() == []
    assert torch.empty(1).dtype is torch.float32 and torch.empty(1).device.type == "cpu" and torch.is_grad_enabled()
    assert torch._C._len_torch_function_stack() == 0  # (no default-device mode left behind: there was none)
