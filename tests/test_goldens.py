"""Golden snapshots: ``flopaudit snapshot``, ``flopaudit check`` and the project's own goldens.

The CLI tests run against a fake backend with a rule the tests can change
(``FakeLinearAdapter``) and a tiny zoo case, so a "counting rule change" and
a "backend upgrade" can be simulated exactly. ``test_golden`` re-counts every
file in ``tests/goldens/`` (written by ``scripts/update-goldens.sh``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from fake_backends import registered
from torch import nn

import flopaudit.zoo
import flopaudit.zoo.catalog
from flopaudit.adapters import Backend
from flopaudit.adapters.base import Adapter, RawCount, count_params
from flopaudit.cli import main
from flopaudit.goldens import (
    Golden,
    GoldenError,
    compare,
    golden_filename,
    goldens_to_json,
    list_golden_paths,
    names_from_filename,
    read_golden_file,
    safe_name,
    write_atomic,
)
from flopaudit.goldens.record import BREAKDOWNS, SCALAR_COUNTS
from flopaudit.goldens.recount import recount
from flopaudit.inputs import ModelInputs
from flopaudit.records import Granularity, Unit
from flopaudit.zoo.case import ModelCase, tensor_inputs
from flopaudit.zoo.catalog import entry_of

# --- a backend whose rules the tests control -------------------------------------------------


class FakeLinearAdapter(Adapter):
    """Counts ``nn.Linear`` as ``in_features * numel(output)`` MACs (bias excluded).

    With ``count_relu`` it also charges ``numel(output)`` per ``nn.ReLU`` to
    the op ``relu`` (the "formula change" the tests make). Reports FLOPs
    (2 per MAC) as its raw total, like FlopCounterMode.
    """

    backend = Backend(name="fake-linear", adapter="FakeLinearAdapter", description="counts nn.Linear",
                      unit=Unit.FLOP, granularity=Granularity.MODULE_HOOKS, module="torch",
                      distribution="flopaudit-fake-linear")
    fake_version: ClassVar[str] = "1.0"
    count_relu: ClassVar[bool] = False

    def version(self) -> str:
        return type(self).fake_version

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        per_module: dict[str, int] = {}
        per_op: dict[str, int] = {}

        def hook(name: str, op: str) -> object:
            def fn(mod: nn.Module, args: object, out: torch.Tensor) -> None:
                macs = mod.in_features * out.numel() if op == "linear" else out.numel()
                per_module[name] = per_module.get(name, 0) + macs
                per_op[op] = per_op.get(op, 0) + macs

            return fn

        handles = []
        for name, mod in model.named_modules():
            if isinstance(mod, nn.Linear):
                handles.append(mod.register_forward_hook(hook(name, "linear")))
            elif isinstance(mod, nn.ReLU) and type(self).count_relu:
                handles.append(mod.register_forward_hook(hook(name, "relu")))
        with torch.no_grad():
            model(*inputs.args, **inputs.kwargs)
        for h in handles:
            h.remove()
        total = sum(per_op.values())
        return RawCount(raw_total=2 * total, macs=total, params=count_params(model),
                        per_module={"": total, **per_module}, per_op=per_op)


class FakeOtherAdapter(FakeLinearAdapter):
    """The same rules under another backend name."""

    backend = dataclasses.replace(FakeLinearAdapter.backend, name="fake-other", adapter="FakeOtherAdapter")


def tiny_mlp() -> nn.Module:
    """8 -> 16 -> ReLU -> 4."""
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


BATCH = 2
LINEAR_MACS = BATCH * 8 * 16 + BATCH * 16 * 4  # both Linear layers, bias excluded
RELU_MACS = BATCH * 16  # one per ReLU output element, once the rule counts ReLU
PARAMS = (8 * 16 + 16) + (16 * 4 + 4)


Plug = Callable[[Backend, str], object]


@pytest.fixture
def plug() -> Iterator[Plug]:
    """``plug(descriptor, adapter module)`` registers a backend for this test only."""
    with contextlib.ExitStack() as stack:
        yield lambda backend, module: stack.enter_context(registered({backend: module}))


UNLOADABLE = dataclasses.replace(FakeLinearAdapter.backend, adapter="Nope")
"""``fake-linear`` with an adapter that cannot be imported (it lives in ``no_such_module_for_flopaudit``)."""


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, plug: Plug) -> None:
    """Register ``fake-linear`` and make the zoo hold only ``tiny-mlp``."""
    plug(FakeLinearAdapter.backend, __name__)
    monkeypatch.setattr(FakeLinearAdapter, "fake_version", "1.0")
    monkeypatch.setattr(FakeLinearAdapter, "count_relu", False)
    case = ModelCase(id="tiny-mlp", build=tiny_mlp, make_inputs=tensor_inputs(BATCH, 8), tags=frozenset({"fake"}))
    monkeypatch.setattr(flopaudit.zoo, "_registry", lambda: {"tiny-mlp": case})
    monkeypatch.setattr(flopaudit.zoo.catalog, "load_catalog", lambda: (entry_of(case),))


def snapshot(out: Path, *extra: str) -> int:
    return main(["snapshot", "--models", "tiny-mlp", "--backends", "fake-linear", "--out", str(out), "--no-isolate",
                 *extra])


def check(goldens: Path, *extra: str) -> int:
    return main(["check", "--goldens", str(goldens), "--no-isolate", *extra])


GOLDEN_NAME = "tiny-mlp--fake-linear.json"

# --- snapshot --------------------------------------------------------------------------------


def test_snapshot_writes_sorted_integer_json(fake: None, tmp_path: Path) -> None:
    assert snapshot(tmp_path) == 0
    path = tmp_path / GOLDEN_NAME
    text = path.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, sort_keys=True, indent=2) + "\n"
    assert data["schema"] == "flopaudit.golden" and data["schema_version"] == 1
    assert (data["model"], data["backend"], data["backend_distribution"]) == ("tiny-mlp", "fake-linear",
                                                                              "flopaudit-fake-linear")
    assert (data["backend_version"], data["torch_version"]) == ("1.0", torch.__version__)
    assert (data["status"], data["unit"], data["inputs"]) == ("ok", "FLOP", "(2x8)")
    assert data["macs"] == LINEAR_MACS
    assert data["raw_total"] == 2 * LINEAR_MACS
    assert data["params"] == PARAMS
    assert data["per_op"] == {"linear": LINEAR_MACS}
    assert data["per_module"] == {"": LINEAR_MACS, "0": BATCH * 8 * 16, "2": BATCH * 16 * 4}
    assert data["error"] is None and data["unsupported"] == {}
    assert not [p for p in tmp_path.iterdir() if p.name != GOLDEN_NAME]  # no temp file left behind


def test_snapshot_again_is_byte_identical(fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    first = (tmp_path / GOLDEN_NAME).read_bytes()
    capsys.readouterr()
    snapshot(tmp_path)
    assert (tmp_path / GOLDEN_NAME).read_bytes() == first
    assert capsys.readouterr().out.startswith("unchanged")


def test_failed_count_is_snapshotted_with_status_and_first_error_line(
    fake: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: Adapter, model: nn.Module, inputs: ModelInputs) -> RawCount:
        raise RuntimeError("rule table exploded\nsecond line of detail")

    monkeypatch.setattr(FakeLinearAdapter, "_count", explode)
    assert snapshot(tmp_path) == 0
    data = json.loads((tmp_path / GOLDEN_NAME).read_text())
    assert data["status"] == "error"
    # the first line, with where it was raised (which follows the first line of a message of several)
    assert data["error"].startswith("RuntimeError: rule table exploded (raised in ") and "second" not in data["error"]
    assert data["macs"] is None and data["per_op"] == {}


def test_snapshot_of_module_function_model_records_its_input_shape(fake: None, tmp_path: Path) -> None:
    spec = f"{__name__}:tiny_mlp"
    rc = main(["snapshot", "--models", spec, "--input-shape", "3,8", "--backends", "fake-linear",
               "--out", str(tmp_path), "--no-isolate"])
    assert rc == 0
    path = tmp_path / golden_filename(spec, "fake-linear")
    assert path.name == f"{__name__}_tiny_mlp--fake-linear.json"
    data = json.loads(path.read_text())
    assert data["input_shape"] == [3, 8]
    assert data["macs"] == 3 * 8 * 16 + 3 * 16 * 4
    assert check(tmp_path) == 0  # check rebuilds the model with the recorded shape


def test_snapshot_rejects_a_backend_that_cannot_load(fake: None, plug: Plug, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    plug(UNLOADABLE, "no_such_module_for_flopaudit")
    assert snapshot(tmp_path) == 2
    assert "backend 'fake-linear' cannot count: adapter cannot be loaded" in capsys.readouterr().err


# --- check: same, drift, accept ----------------------------------------------------------------


def test_check_passes_when_nothing_changed(fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    capsys.readouterr()
    assert check(tmp_path) == 0
    out = capsys.readouterr().out
    assert "tiny-mlp / fake-linear: same (total 384)" in out
    assert "checked 1 golden: 1 same, 0 drifted" in out


def test_rule_change_fails_check_with_per_op_diff_and_accept_restores_green(
    fake: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot(tmp_path)
    monkeypatch.setattr(FakeLinearAdapter, "count_relu", True)  # the rule change
    capsys.readouterr()
    assert check(tmp_path) == 1
    out = capsys.readouterr().out
    new_total = LINEAR_MACS + RELU_MACS
    pct = (new_total - LINEAR_MACS) / LINEAR_MACS * 100
    assert f"tiny-mlp / fake-linear: total {LINEAR_MACS} -> {new_total} (+{pct:.1f}%)" in out
    assert "count changed at the same version (fake-linear 1.0, torch" in out
    assert "  per op:\n    relu  0 -> 32\n" in out
    assert re.search(r"  per module:\n    <root>  384 -> 416\n    1 +0 -> 32\n", out)
    assert f"accept: flopaudit check --goldens {tmp_path} --models tiny-mlp --backends fake-linear --accept" in out
    assert "checked 1 golden: 0 same, 1 drifted" in out

    assert check(tmp_path, "--accept") == 0
    assert f"accepted: rewrote {tmp_path / GOLDEN_NAME}" in capsys.readouterr().out
    data = json.loads((tmp_path / GOLDEN_NAME).read_text())
    assert data["per_op"] == {"linear": LINEAR_MACS, "relu": RELU_MACS}
    assert check(tmp_path) == 0


def test_backend_upgrade_is_named_as_version_change(
    fake: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshot(tmp_path)
    monkeypatch.setattr(FakeLinearAdapter, "fake_version", "2.0")
    capsys.readouterr()
    assert check(tmp_path) == 0  # a new version with the same counts is not drift ...
    assert "backend version changed (golden 1.0, installed 2.0)" in capsys.readouterr().out  # ... but is said
    monkeypatch.setattr(FakeLinearAdapter, "count_relu", True)
    assert check(tmp_path) == 1
    out = capsys.readouterr().out
    assert "backend version changed (golden 1.0, installed 2.0)" in out
    assert "count changed at the same version" not in out


def test_torch_version_change_is_named(fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    path = tmp_path / GOLDEN_NAME
    data = json.loads(path.read_text())
    data.update(torch_version="2.0.0", macs=LINEAR_MACS - 1)
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert check(tmp_path) == 1
    out = capsys.readouterr().out
    assert f"torch version changed (golden 2.0.0, installed {torch.__version__})" in out
    assert f"total {LINEAR_MACS - 1} -> {LINEAR_MACS} (+{100 / (LINEAR_MACS - 1):.1f}%)" in out


def test_tolerance_allows_small_relative_changes(fake: None, tmp_path: Path) -> None:
    snapshot(tmp_path)
    path = tmp_path / GOLDEN_NAME
    data = json.loads(path.read_text())
    data["macs"] = 380  # fresh count is 384: 4 / 380 = 1.05 %
    path.write_text(json.dumps(data))
    assert check(tmp_path) == 1
    assert check(tmp_path, "--tolerance", "0.01") == 1
    assert check(tmp_path, "--tolerance", "2%") == 0
    assert check(tmp_path, "--tolerance", "0.02") == 0


def test_tolerance_never_hides_a_new_op(fake: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot(tmp_path)
    monkeypatch.setattr(FakeLinearAdapter, "count_relu", True)
    assert check(tmp_path, "--tolerance", "0.5") == 1  # relu went 0 -> 32: a zero must stay zero


def test_accept_rewrites_only_drifted_goldens(fake: None, plug: Plug, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot(tmp_path)
    other = tmp_path / "tiny-mlp--fake-other.json"
    plug(FakeOtherAdapter.backend, __name__)
    data = json.loads((tmp_path / GOLDEN_NAME).read_text())
    data["backend"] = "fake-other"
    other.write_text(json.dumps(data, sort_keys=True, indent=2) + "\n")
    before = other.read_bytes()
    (tmp_path / GOLDEN_NAME).write_text(json.dumps({**data, "backend": "fake-linear", "params": 1}))
    assert check(tmp_path, "--accept") == 0
    assert other.read_bytes() == before
    assert json.loads((tmp_path / GOLDEN_NAME).read_text())["params"] == PARAMS


def test_check_counts_in_supervised_workers_by_default(fake: None, tmp_path: Path) -> None:
    """A user's model (``module:function``), snapshotted here, checked again in worker processes."""
    spec = ["--models", f"{__name__}:tiny_mlp", "--input-shape", f"{BATCH},8", "--backends", "fake-linear"]
    assert main(["snapshot", *spec, "--out", str(tmp_path), "--no-isolate"]) == 0
    assert main(["check", "--goldens", str(tmp_path)]) == 0
    (golden,) = tmp_path.glob("*.json")
    assert json.loads(golden.read_text())["macs"] == LINEAR_MACS


def test_adapter_that_no_longer_loads_is_drift(fake: None, plug: Plug, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    plug(UNLOADABLE, "no_such_module_for_flopaudit")
    capsys.readouterr()
    assert check(tmp_path) == 1
    out = capsys.readouterr().out
    assert "tiny-mlp / fake-linear: status ok -> error (adapter cannot be loaded: ModuleNotFoundError" in out


def _bias_as_macs(call: object) -> object:
    """A changed addmm rule: the bias add counted as one MAC per output element, no extra FLOPs."""
    from flopaudit.reference.registry import Category, Cost

    (m, k), n = call.shape("mat1"), call.shape("mat2")[1]  # type: ignore[attr-defined]
    return Cost(m * k * n + m * n, 0, Category.MATMUL)


def test_reference_formula_change_fails_check_and_accept_restores_green(
    fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = pytest.importorskip("flopaudit.reference.registry")
    rc = main(["snapshot", "--models", "tiny-mlp", "--backends", "reference", "--out", str(tmp_path), "--no-isolate"])
    assert rc == 0
    golden = json.loads((tmp_path / "tiny-mlp--reference.json").read_text())
    assert golden["macs"] == LINEAR_MACS
    biases = BATCH * 16 + BATCH * 4  # one per output element of each Linear
    capsys.readouterr()
    with registry.temporary_formula("aten.addmm", _bias_as_macs):
        assert check(tmp_path) == 1
        out = capsys.readouterr().out
        pct = biases / LINEAR_MACS * 100
        assert f"tiny-mlp / reference: total {LINEAR_MACS} -> {LINEAR_MACS + biases} (+{pct:.1f}%)" in out
        assert "count changed at the same version (reference " in out
        assert re.search(rf"per op:\n    aten\.addmm\.default  {LINEAR_MACS} -> {LINEAR_MACS + biases}\n", out)
        old_flops = golden["extra"]["flops"]
        assert re.search(rf"extra:\n(    .*\n)*    flops +{old_flops} -> {old_flops + 2 * biases - biases}\n", out)
        assert check(tmp_path, "--accept") == 0
        assert check(tmp_path) == 0
    assert check(tmp_path) == 1  # the built-in rule is back: the accepted golden now differs


# --- check: usage errors (exit 2, one line) ---------------------------------------------------


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param('{"schema": "flopaudit.golden", ', "not valid JSON", id="invalid-json"),
        pytest.param('{"schema": "something-else"}', "not a flopaudit golden", id="wrong-schema"),
        pytest.param('{"schema": "flopaudit.golden", "schema_version": 99}', "newer than this flopaudit reads",
                     id="newer-schema"),
        pytest.param("[1, 2]", "expected a JSON object", id="not-an-object"),
    ],
)
def test_corrupt_golden_names_the_file_and_the_command_to_regenerate(
    fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, problem: str
) -> None:
    (tmp_path / GOLDEN_NAME).write_text(content)
    assert check(tmp_path) == 2
    err = _one_error_line(capsys)
    assert f"golden {tmp_path / GOLDEN_NAME}: " in err and problem in err
    assert f"regenerate it with: flopaudit snapshot --models tiny-mlp --backends fake-linear --out {tmp_path}" in err


def test_golden_with_a_float_count_is_rejected(fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    path = tmp_path / GOLDEN_NAME
    path.write_text(path.read_text().replace(f'"macs": {LINEAR_MACS}', '"macs": 384.5'))
    assert check(tmp_path) == 2
    assert "field 'macs' must be an integer or null, found 384.5" in _one_error_line(capsys)


def test_missing_golden_for_the_selection(fake: None, plug: Plug, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    plug(FakeOtherAdapter.backend, __name__)
    capsys.readouterr()
    assert check(tmp_path, "--models", "tiny-mlp", "--backends", "fake-other") == 2
    err = _one_error_line(capsys)
    assert "no golden for tiny-mlp / fake-other" in err
    assert f"flopaudit snapshot --models tiny-mlp --backends fake-other --out {tmp_path}" in err


def test_missing_goldens_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(tmp_path / "nope") == 2
    assert f"goldens directory {tmp_path / 'nope'} does not exist" in _one_error_line(capsys)


def test_empty_goldens_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(tmp_path) == 2
    assert f"no golden files (*.json) in {tmp_path}" in _one_error_line(capsys)


def test_unknown_model_in_a_golden(fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    path = tmp_path / GOLDEN_NAME
    path.write_text(path.read_text().replace('"model": "tiny-mlp"', '"model": "no-such-model"'))
    capsys.readouterr()
    assert check(tmp_path) == 2
    err = _one_error_line(capsys)
    assert "unknown model 'no-such-model'" in err and f"(named in golden {path})" in err


def test_unknown_backend_in_a_golden(fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    path = tmp_path / GOLDEN_NAME
    path.write_text(path.read_text().replace('"backend": "fake-linear"', '"backend": "abacus"'))
    capsys.readouterr()
    assert check(tmp_path) == 2
    assert f"unknown backend 'abacus' in golden {path}" in _one_error_line(capsys)


def test_bad_tolerance_is_a_usage_error(fake: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snapshot(tmp_path)
    capsys.readouterr()
    assert check(tmp_path, "--tolerance", "lots") == 2
    assert "invalid --tolerance 'lots'" in _one_error_line(capsys)


def test_check_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    assert "0  every count matches its golden" in out
    assert "1  drift" in out
    assert "2  usage error" in out


# --- the record and the files -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "safe"),
    [("resnet18", "resnet18"), ("pkg.mod:build", "pkg.mod_build"), ("a--b", "a-b"), ("x/../y", "x_.._y"),
     ("", "unnamed")],
    ids=["plain", "module-function", "double-dash", "slashes", "empty"],
)
def test_safe_name(text: str, safe: str) -> None:
    assert safe_name(text) == safe


def test_file_name_round_trip() -> None:
    assert golden_filename("resnet18", "torch-flop-counter") == "resnet18--torch-flop-counter.json"
    assert names_from_filename(Path("resnet18--torch-flop-counter.json")) == ("resnet18", "torch-flop-counter")
    assert names_from_filename(Path("mymodel.json")) is None


def test_a_long_model_id_makes_a_file_name_the_file_system_takes(tmp_path: Path) -> None:
    """A call spec with many arguments once made a name over 255 bytes ("File name too long" and a
    traceback from snapshot); a long model part keeps its start and a hash of the whole id, so
    ids that differ only past the cut get different files, and short ids keep their names."""
    spec = "timm:create_model('resnet10t', " + ", ".join(f"option_{i}={i}" for i in range(40)) + ")"
    other = spec.replace("option_39=39", "option_39=40")
    names = {golden_filename(s, "pytorch-model-summary", kind) for s in (spec, other) for kind in ("inference", "train")}
    assert len(names) == 4 and all(len(n.encode()) <= 255 for n in names)
    assert all(n.startswith("timm_create_model_resnet10t_option_0_0_") for n in names)
    for name in names:
        write_atomic(tmp_path / name, "{}\n")  # the file system takes it
        assert names_from_filename(Path(name))[1] == "pytorch-model-summary"
    assert golden_filename("x" * 160, "fvcore") == "x" * 160 + "--fvcore.json"


def _golden(**changes: object) -> Golden:
    base = dict(model="m", backend="b", backend_distribution="b", backend_version="1", torch_version="2",
                unit="MAC", status="ok", macs=100, raw_total=200, params=7, per_op=(("conv", 100),))
    base.update(changes)
    return Golden(**base)  # type: ignore[arg-type]


def test_golden_set_file_round_trip(tmp_path: Path) -> None:
    goldens = [_golden(backend="b2"), _golden(backend="b1", per_module=(("", 100), ("fc", 100)))]
    path = tmp_path / "set.json"
    write_atomic(path, goldens_to_json(goldens))
    read = read_golden_file(path).goldens
    assert [g.backend for g in read] == ["b1", "b2"]
    assert set(read) == set(goldens)


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "g.json"
    path.write_text("old\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["g.json"]


def test_atomic_write_gives_an_ordinary_file_mode(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.json", "{}\n")
    finally:
        os.umask(umask)
    assert (tmp_path / "new.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    existing = tmp_path / "kept.json"
    existing.write_text("{}\n")
    existing.chmod(0o640)
    write_atomic(existing, "[]\n")
    assert existing.stat().st_mode & 0o777 == 0o640


def test_compare_treats_a_missing_breakdown_key_as_zero() -> None:
    assert not compare(_golden(), _golden(per_op=(("conv", 100), ("relu", 0)))).drifted
    diff = compare(_golden(), _golden(per_op=(("conv", 100), ("relu", 5))))
    assert [(c.section, c.key, c.old, c.new) for c in diff.changes] == [("per_op", "relu", 0, 5)]
    assert diff.headline() == "m / b: total 100 unchanged, breakdown changed"


def test_compare_reports_a_status_change() -> None:
    diff = compare(_golden(), _golden(status="timeout", error="no result after 5 s", macs=None, raw_total=None,
                                      params=None, per_op=()))
    assert diff.headline() == "m / b: status ok -> timeout (no result after 5 s)"


def test_diff_shows_exact_integers_when_rounded_values_look_alike() -> None:
    diff = compare(_golden(macs=1_819_065_856), _golden(macs=1_819_065_857))
    assert diff.headline() == "m / b: total 1819065856 -> 1819065857 (+1) (+5.5e-08%)"


@pytest.mark.parametrize("section", [*BREAKDOWNS, *(s for s in SCALAR_COUNTS if s != "macs")])
def test_a_change_in_every_compared_section_is_shown_in_words(section: str) -> None:
    """A training step's golden whose split between phases moved (the total unchanged) is
    drift shown per phase (it once failed ``check`` with a KeyError); so is every section."""
    if section in BREAKDOWNS:
        old, new = _golden(**{section: (("backward", 60), ("forward", 40))}), \
            _golden(**{section: (("backward", 50), ("forward", 50))})
    else:
        old, new = _golden(**{section: 7}), _golden(**{section: 8})
    diff = compare(old, new)
    assert diff.drifted
    text = diff.render()
    if section in BREAKDOWNS:
        assert re.search(r"^    backward +60 -> 50$", text, re.M), text
    else:
        assert re.search(r"^  \S.* +7 -> 8$", text, re.M), text


def test_unknown_field_is_rejected() -> None:
    data = _golden().to_dict()
    data["colour"] = "blue"
    with pytest.raises(GoldenError, match="unknown field"):
        Golden.from_dict(data)


# --- the project's own goldens ----------------------------------------------------------------

GOLDEN_DIR = Path(__file__).parent / "goldens"
SLOW_MODELS: frozenset[str] = frozenset()
"""Models whose goldens run only with ``-m slow`` (kept out of the default tier for time)."""


def _project_goldens() -> list[object]:
    """One param per model and pass (``<model>-train``: its training-step goldens): every golden of
    that model (all backends), counted again in one run."""
    by_model: dict[str, list[tuple[Path, Golden]]] = {}
    params: list[object] = []
    for path in list_golden_paths(GOLDEN_DIR) if GOLDEN_DIR.is_dir() else []:
        try:
            records = read_golden_file(path).goldens
        except GoldenError as exc:
            params.append(pytest.param([(path, str(exc))], id=path.stem.replace("--", "-")))
            continue
        for g in records:
            if not _missing_backend(g.backend):
                model = f"{g.model}-train" if g.pass_.train else g.model
                by_model.setdefault(model, []).append((path, g))
    for model, entries in by_model.items():
        marks = [pytest.mark.slow] if entries[0][1].model in SLOW_MODELS else []
        params.append(pytest.param(entries, id=model, marks=marks))
    return params


def _missing_backend(name: str) -> str:
    """Why a golden's backend cannot count here ("" if it can): torchsummary and
    torch-summary install the same import package, so one environment checks
    the goldens of one of them (``tox -e goldens-torch-summary`` the other's)."""
    from flopaudit.adapters import backends

    backend = backends().get(name)
    return backend.missing_reason() if backend is not None and not backend.available() else ""


@pytest.mark.goldens
@pytest.mark.parametrize("entries", _project_goldens())
def test_golden(entries: list[tuple[Path, Golden | str]]) -> None:
    """Counting the model again with each golden's backend gives exactly the stored counts
    (the goldens of a backend that is not installed here are left out)."""
    failures = []
    for path, golden in entries:
        if isinstance(golden, str):
            rel = path.relative_to(GOLDEN_DIR.parent.parent)
            pytest.fail(f"golden {rel}: {golden}; regenerate with scripts/update-goldens.sh", pytrace=False)
    goldens = [g for _, g in entries]
    for (path, golden), current in zip(entries, recount(goldens)):
        diff = compare(golden, current)
        if diff.drifted:
            rel = path.relative_to(GOLDEN_DIR.parent.parent)
            failures.append(
                f"{diff.render()}\ngolden: {rel}\n"
                f"accept: flopaudit check --goldens tests/goldens --models {golden.model} --backends {golden.backend} "
                "--accept   (or regenerate all: scripts/update-goldens.sh)"
            )
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
