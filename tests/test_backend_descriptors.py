"""Backend descriptors: each backend described once, found without importing torch."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fake_backends import FAKES, RaisingAdapter, registered

import flopaudit.adapters as adapters
from flopaudit.adapters import Backend, MetaSupport, backend_names, backends, get_adapter, get_backend
from flopaudit.errors import UserError
from flopaudit.records import Granularity, Unit

COUNTERS = ("reference", "thop", "ptflops-pytorch", "ptflops-aten", "fvcore", "torchinfo", "torch-flop-counter",
            "torchstat", "torchsummary", "torch-summary", "pytorch-model-summary", "calflops", "deepspeed",
            "torchprofile", "torch-profiler")
RULES_OF_THUMB = ("rule-3x-forward", "rule-6nd", "rule-chinchilla")
BUILT_IN = COUNTERS + RULES_OF_THUMB


def test_listing_backends_imports_neither_torch_nor_a_backend() -> None:
    code = textwrap.dedent("""
        import sys
        import flopaudit.adapters as a
        found = a.backends()
        a.get_backend("fvcore").version(); [b.available() for b in found.values()]
        heavy = sorted(m for m in ("torch", "thop", "ptflops", "fvcore", "torchinfo", "numpy", "torchstat",
                                   "torchsummary", "pytorch_model_summary", "calflops", "deepspeed", "torchprofile")
                       if m in sys.modules)
        print(len(found), heavy)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(len(BUILT_IN)) and out[1:] == ["[]"]


def test_the_backends_command_lists_without_importing_torch() -> None:
    code = ("import sys, argparse; from flopaudit.commands.backends import main; main(argparse.Namespace()); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "False"
    assert all(name in out for name in BUILT_IN)


def test_every_built_in_backend_is_found_in_column_order() -> None:
    assert backend_names() == BUILT_IN
    assert list(backends()) == list(BUILT_IN)
    orders = [b.order for b in backends().values()]
    assert orders == sorted(orders) and orders[0] == 0


def test_an_adapter_reads_its_descriptor() -> None:
    for name in BUILT_IN:
        adapter, backend = get_adapter(name), get_backend(name)
        assert type(adapter).backend is backend
        assert type(adapter).__name__ == backend.adapter
        assert (adapter.name, adapter.unit, adapter.granularity, adapter.module) == (
            name, backend.unit, backend.granularity, backend.module)
        assert adapter.distribution == (backend.distribution or "flopaudit")
        for attribute in ("name", "unit", "granularity", "distribution", "module", "description"):
            assert attribute not in vars(type(adapter)), f"{name}: {attribute} repeated on the adapter class"


def test_descriptor_facts() -> None:
    assert get_backend("torch-flop-counter").unit is Unit.FLOP
    assert get_backend("fvcore").granularity is Granularity.JIT_TRACE
    assert get_backend("reference").distribution is None and get_backend("reference").ruleset is None
    assert all(get_backend(n).ruleset == f"flopaudit.reference.backend_rulesets.{n.replace('-', '_')}"
               for n in COUNTERS[1:])
    assert {get_backend(n).ruleset for n in RULES_OF_THUMB} == {"flopaudit.reference.backend_rulesets.rules_of_thumb"}
    assert [n for n in BUILT_IN if get_backend(n).unit_note] == [
        "ptflops-pytorch", "torch-flop-counter", "torchstat", "torch-summary", "torch-profiler", "rule-6nd",
        "rule-chinchilla"]
    assert all(get_backend(n).install.startswith("pip install ") for n in COUNTERS[1:])
    assert [n for n in BUILT_IN if get_backend(n).counts("train")] == ["reference", "torch-flop-counter", "calflops",
                                                                       *RULES_OF_THUMB]
    assert [n for n in BUILT_IN if not get_backend(n).counts("inference")] == list(RULES_OF_THUMB)
    assert all(get_backend(n).granularity is Granularity.RULE_OF_THUMB for n in RULES_OF_THUMB)
    assert "transformer-encoder-padding-mask" in get_backend("torchinfo").known_divergences


def test_unknown_backend_is_a_user_error_listing_the_valid_names() -> None:
    for lookup in (get_backend, get_adapter):
        with pytest.raises(UserError, match="unknown backend 'abacus'; valid backends: reference, thop, "):
            lookup("abacus")


def test_a_descriptor_is_frozen_hashable_and_picklable() -> None:
    backend = get_backend("torchinfo")
    with pytest.raises(dataclasses.FrozenInstanceError):
        backend.name = "other"  # type: ignore[misc]
    assert hash(backend) == hash(pickle.loads(pickle.dumps(backend)))
    assert pickle.loads(pickle.dumps(backend)) == backend


def test_a_descriptor_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="passes"):
        Backend(name="x", adapter="X", description="", unit=Unit.MAC, granularity=Granularity.ATEN_OPS, module="x",
                passes=("training",))
    with pytest.raises(ValueError, match="required"):
        Backend(name="x", adapter="", description="", unit=Unit.MAC, granularity=Granularity.ATEN_OPS, module="x")
    with pytest.raises(TypeError, match="records.Unit"):
        Backend(name="x", adapter="X", description="", unit="MAC",  # type: ignore[arg-type]
                granularity=Granularity.ATEN_OPS, module="x")


def test_a_backend_without_a_meta_verdict_does_not_count_on_meta() -> None:
    backend = RaisingAdapter.backend
    assert backend.meta == MetaSupport(False, "this backend was not probed on the meta device")


def test_runtime_registration_adds_and_removes_a_backend() -> None:
    assert "fake-raise" not in backend_names()
    with registered(FAKES):
        assert "fake-raise" in backend_names()
        assert backend_names()[: len(BUILT_IN)] == BUILT_IN  # default order 1000: after the built-ins
        assert isinstance(get_adapter("fake-raise"), RaisingAdapter)
        assert adapters.registration("fake-raise") == (RaisingAdapter.backend, "fake_backends")
    assert "fake-raise" not in backend_names()


def test_a_built_in_backend_cannot_be_replaced() -> None:
    thop = get_backend("thop")
    adapters.register_backend(thop, "flopaudit.adapters.thop")  # the same registration: a no-op
    with pytest.raises(ValueError, match="built in"):
        adapters.register_backend(dataclasses.replace(thop, order=99), "flopaudit.adapters.thop")


def test_an_adapter_class_must_carry_its_descriptor() -> None:
    wrong = dataclasses.replace(RaisingAdapter.backend, name="fake-mismatch")
    with registered({wrong: "fake_backends"}), pytest.raises(TypeError, match="not the descriptor"):
        get_adapter("fake-mismatch")


def test_a_missing_backend_names_its_install_command(tmp_path: Path) -> None:
    missing = Backend(name="abacus", adapter="AbacusAdapter", description="", unit=Unit.MAC,
                      granularity=Granularity.MODULE_HOOKS, module="no_such_abacus_module",
                      distribution="no-such-abacus", install="pip install no-such-abacus")
    assert not missing.available() and missing.version() == ""
    assert missing.missing_reason() == "no-such-abacus is not installed; install it with: pip install no-such-abacus"


def test_module_exists_finds_submodules_without_importing_their_packages() -> None:
    from flopaudit.adapters.descriptor import module_exists

    code = ("import sys; from flopaudit.adapters.descriptor import module_exists as m; "
            "print(m('torch.utils.flop_counter'), m('torch.utils.no_such_thing'), m('no_such_pkg.x'), "
            "'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "False", "False", "False"]
    assert module_exists("flopaudit.reference") and not module_exists("flopaudit.no_such_module")


@pytest.mark.parametrize(("present", "available"), [("thop", True), ("ultralytics-thop", False), (None, True)])
def test_thop_is_not_applicable_where_ultralytics_thop_owns_its_files(monkeypatch: pytest.MonkeyPatch,
                                                                     present: str | None, available: bool) -> None:
    """``ultralytics-thop`` installs the import package ``thop`` over thop's files: the thop backend
    then says so instead of counting with another counter; where no RECORD tells (a source
    install), thop is taken to be there if it imports."""
    import torch
    from torch import nn

    from flopaudit.adapters import _shared_import, get_adapter, get_backend
    from flopaudit.adapters.descriptor import module_exists
    from flopaudit.records import Status

    monkeypatch.setattr(_shared_import, "owner", lambda distributions, files: present)
    backend = get_backend("thop")
    assert backend.available() is (available and module_exists("thop"))
    if present == "ultralytics-thop":
        assert "installed here is ultralytics-thop's, not thop's" in backend.missing_reason()
        assert backend.version() == ""
        r = get_adapter("thop").count(nn.Linear(4, 2), torch.randn(1, 4))
        assert r.status is Status.NOT_APPLICABLE and "ultralytics-thop" in (r.error or "")


def test_the_files_import_finds_decide_which_thop_counts_here() -> None:
    from flopaudit.adapters import get_backend
    from flopaudit.adapters._shared_import import owner

    backend = get_backend("thop")
    present = owner(backend.rivals, backend.files)
    if present is not None:
        assert backend.available() is (present == "thop")
