"""The pytest plugin (``flopaudit_check`` fixture), run inside throwaway pytest sessions.

The inner test counts ``Linear(8, W, bias=False)`` on a (2, 8) input with
torch's FlopCounterMode backend: ``2 * 8 * W`` MACs, all in ``aten.mm``.
``W`` comes from the environment so the outer test can change the model
between runs (the drift a user would make by editing their model).
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from flopaudit.adapters import get_adapter

pytest_plugins = ["pytester"]

BACKEND = "torch-flop-counter"
BATCH, IN = 2, 8

INNER_TEST = f"""
import os

import torch
from torch import nn


def test_flops(flopaudit_check):
    width = int(os.environ.get("TINY_WIDTH", "16"))
    model = nn.Sequential(nn.Linear({IN}, width, bias=False), nn.ReLU())
    results = flopaudit_check(model, torch.randn({BATCH}, {IN}), golden="goldens/tiny.json", backends=("{BACKEND}",))
    assert [r.backend for r in results] == ["{BACKEND}"]


def test_plain():
    assert True
"""


def macs(width: int) -> int:
    return BATCH * IN * width


@pytest.fixture(scope="module")
def warm() -> None:
    """Count once out here so every lazily imported module is loaded before an inner run.

    In-process pytester runs drop the modules an inner run imported; torch
    cannot import some of them twice (``torch._dynamo`` registers a library).
    """
    try:
        adapter = get_adapter(BACKEND)
    except Exception as exc:  # noqa: BLE001 - the adapter is written by another part of the project
        pytest.skip(f"{BACKEND} adapter not loadable: {exc}")
    import flopaudit.goldens.diff  # noqa: F401 - loaded here for the same reason
    import flopaudit.run  # noqa: F401

    adapter.count(torch.nn.Linear(IN, 4, bias=False), torch.randn(BATCH, IN))
    try:
        get_adapter("reference").count(torch.nn.Linear(IN, 4, bias=False), torch.randn(BATCH, IN))
    except Exception:  # noqa: BLE001 - only the reference test needs it, and it skips on its own
        pass


@pytest.fixture
def inner(warm: None, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv("FLOPAUDIT_ACCEPT", raising=False)
    monkeypatch.setenv("TINY_WIDTH", "16")
    pytester.makepyfile(test_flops=INNER_TEST)
    return pytester


def test_plugin_is_registered_by_its_entry_point(inner: pytest.Pytester) -> None:
    result = inner.runpytest("--help")
    result.stdout.fnmatch_lines(["*--flopaudit-accept*"])


def test_first_run_without_golden_fails_and_says_how_to_accept(inner: pytest.Pytester) -> None:
    result = inner.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "flopaudit: no golden file goldens/tiny.json yet; counted:" in out
    assert f"{BACKEND}: 256 MACs ({macs(16)})" in out
    assert "to write it run: pytest --flopaudit-accept test_flops.py::test_flops" in out
    assert "FLOPAUDIT_ACCEPT=1 pytest test_flops.py::test_flops" in out
    assert not (inner.path / "goldens" / "tiny.json").exists()


def test_accept_writes_the_golden_and_the_next_run_passes(inner: pytest.Pytester) -> None:
    inner.runpytest("--flopaudit-accept").assert_outcomes(passed=2)
    data = json.loads((inner.path / "goldens" / "tiny.json").read_text())
    assert (data["model"], data["backend"], data["status"]) == ("tiny", BACKEND, "ok")
    assert data["macs"] == macs(16)
    assert data["per_op"] == {"aten.mm": macs(16)}
    assert data["params"] == IN * 16
    inner.runpytest().assert_outcomes(passed=2)


def test_drift_fails_with_a_readable_diff_and_env_accept_restores_green(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    inner.runpytest("--flopaudit-accept").assert_outcomes(passed=2)
    monkeypatch.setenv("TINY_WIDTH", "24")  # the user widened a layer
    result = inner.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    pct = (macs(24) - macs(16)) / macs(16) * 100
    assert "flopaudit: counts differ from golden goldens/tiny.json" in out
    assert f"tiny / {BACKEND}: total {macs(16)} -> {macs(24)} (+{pct:.1f}%)" in out
    assert "count changed at the same version" in out
    assert re.search(rf"per op:\n\s+aten\.mm\s+{macs(16)} -> {macs(24)}\n", out)
    assert re.search(rf"params +{IN * 16} -> {IN * 24}\n", out)
    assert "to accept the new counts run: pytest --flopaudit-accept test_flops.py::test_flops" in out
    assert "Traceback" not in out

    monkeypatch.setenv("FLOPAUDIT_ACCEPT", "1")
    inner.runpytest().assert_outcomes(passed=2)
    monkeypatch.delenv("FLOPAUDIT_ACCEPT")
    inner.runpytest().assert_outcomes(passed=2)
    assert json.loads((inner.path / "goldens" / "tiny.json").read_text())["macs"] == macs(24)


def test_corrupt_golden_fails_with_the_problem_and_the_accept_switch(inner: pytest.Pytester) -> None:
    (inner.path / "goldens").mkdir()
    (inner.path / "goldens" / "tiny.json").write_text('{"schema": "flopaudit.golden", ')
    result = inner.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "flopaudit: golden goldens/tiny.json: not valid JSON" in out
    assert "pytest --flopaudit-accept test_flops.py::test_flops" in out
    inner.runpytest("--flopaudit-accept").assert_outcomes(passed=2)
    inner.runpytest().assert_outcomes(passed=2)


def test_golden_of_another_backend_is_a_difference(inner: pytest.Pytester) -> None:
    inner.runpytest("--flopaudit-accept").assert_outcomes(passed=2)
    path = inner.path / "goldens" / "tiny.json"
    path.write_text(path.read_text().replace(f'"backend": "{BACKEND}"', '"backend": "fvcore"'))
    result = inner.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert f"tiny / {BACKEND}: not in the golden" in out
    assert "tiny / fvcore: in the golden but not counted by this test" in out


def test_tests_using_the_fixture_get_the_goldens_marker(inner: pytest.Pytester) -> None:
    inner.runpytest("--flopaudit-accept").assert_outcomes(passed=2)
    result = inner.runpytest("-m", "goldens", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*test_flops.py::test_flops PASSED*"])


@pytest.fixture
def reference_loadable() -> None:
    try:
        get_adapter("reference")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"reference adapter not loadable: {exc}")


def test_default_backend_is_the_reference(inner: pytest.Pytester, reference_loadable: None) -> None:
    inner.makepyfile(test_default="""
import torch
from torch import nn


def test_default(flopaudit_check):
    model = nn.Linear(8, 16, bias=False)
    flopaudit_check(model, torch.randn(2, 8), golden="goldens/default.json")
""")
    inner.runpytest("test_default.py", "--flopaudit-accept").assert_outcomes(passed=1)
    data = json.loads((inner.path / "goldens" / "default.json").read_text())
    assert (data["backend"], data["macs"]) == ("reference", macs(16))
    inner.runpytest("test_default.py").assert_outcomes(passed=1)


def test_relative_goldens_start_at_the_test_files_directory_wherever_pytest_runs(
        inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test lives in tests/ with no ini file; started from tests/ or from the project root,
    ``golden="goldens/tiny.json"`` is tests/goldens/tiny.json (never tests/tests/...)."""
    tests_dir = inner.path / "tests"
    tests_dir.mkdir()
    (inner.path / "test_flops.py").rename(tests_dir / "test_flops.py")
    result = inner.runpytest(str(tests_dir))
    assert "(a relative golden path starts at the test file's directory" in result.stdout.str()
    inner.runpytest(str(tests_dir), "--flopaudit-accept").assert_outcomes(passed=2)
    assert (tests_dir / "goldens" / "tiny.json").is_file()
    assert not (tests_dir / "tests").exists() and not (inner.path / "goldens").exists()
    monkeypatch.chdir(tests_dir)
    inner.runpytest(".").assert_outcomes(passed=2)


def test_a_training_step_golden_records_its_pass_and_phases(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                                            reference_loadable: None) -> None:
    """``pass_="train"`` counts a training step: for ``Linear(8, 16, bias=False)`` on a (2, 8)
    input that needs no gradient, the forward product (256 MACs) and the weight's gradient (256;
    no input gradient). Checked as inference, the golden differs; a bad optimizer is one line."""
    inner.makepyfile(test_train="""
import os

import torch
from torch import nn


def test_train(flopaudit_check):
    model = nn.Linear(8, 16, bias=False)
    flopaudit_check(model, torch.randn(2, 8), golden="goldens/train.json", pass_=os.environ.get("TINY_PASS", "train"),
                    optimizer=os.environ.get("TINY_OPTIMIZER") or None)
""")
    inner.runpytest("test_train.py", "--flopaudit-accept").assert_outcomes(passed=1)
    data = json.loads((inner.path / "goldens" / "train.json").read_text())
    assert data["options"]["pass"].strip("'") == "train"
    assert data["phases"] == {"forward": macs(16), "backward": macs(16), "loss": 0}
    inner.runpytest("test_train.py").assert_outcomes(passed=1)
    monkeypatch.setenv("TINY_PASS", "inference")  # the golden is of a training step
    result = inner.runpytest("test_train.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*counts differ from golden goldens/train.json*"])
    monkeypatch.setenv("TINY_PASS", "train")
    monkeypatch.setenv("TINY_OPTIMIZER", "lion")
    result = inner.runpytest("test_train.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*flopaudit_check: invalid optimizer 'lion'*"])
