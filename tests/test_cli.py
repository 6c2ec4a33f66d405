"""The command line: user mistakes end in one line and exit 2; runs write files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_backends import FAKES, registered

from flopaudit.cli import COMMANDS, build_parser, main


@pytest.fixture()
def fake_backends() -> Iterator[None]:
    with registered(FAKES):
        yield


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["run", "--models", "no_such_model"], "unknown model 'no_such_model'"),
        (["run", "--models", "resnet18", "--backends", "nope"], "unknown backend 'nope'; valid backends: reference"),
        (["run", "--tags", "no-such-tag"], "unknown tag(s) no-such-tag"),
        (["run", "--models", "resnet18", "--input-shape", "1,a,3"], "invalid --input-shape '1,a,3'"),
        (["run", "--models", "no_such_pkg_xyz:build", "--input-shape", "1,4"], "cannot import module 'no_such_pkg_xyz'"),
        (["run", "--models", "user_models:missing", "--input-shape", "1,4"], "has no attribute 'missing'"),
        (["run", "--models", "user_models:NOT_CALLABLE", "--input-shape", "1,4"], "is not callable"),
        (["run", "--models", "user_models:tiny_linear"], "needs --input-shape"),
        (["run", "--shard", "3/2"], "invalid --shard '3/2'"),
        (["run", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v)[:40],
)
def test_user_mistakes_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert expected in _error_line(capsys, argv)


def test_shape_the_model_rejects_names_model_shape_and_error(
    capsys: pytest.CaptureFixture[str], fake_backends: None, tmp_path: Path
) -> None:
    err = _error_line(capsys, ["run", "--models", "user_models:tiny_linear", "--input-shape", "1,5",
                               "--backends", "fake-noisy", "--out", str(tmp_path), "--no-progress"])
    assert "model 'user_models:tiny_linear' rejected input (1x5)" in err
    assert "RuntimeError" in err and "shapes cannot be multiplied" in err


def test_model_function_returning_non_module(capsys: pytest.CaptureFixture[str], fake_backends: None,
                                             tmp_path: Path) -> None:
    err = _error_line(capsys, ["run", "--models", "user_models:not_a_model", "--input-shape", "1,4",
                               "--backends", "fake-noisy", "--out", str(tmp_path), "--no-progress"])
    assert "returned int, not a torch.nn.Module" in err


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    build_parser()
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: flopaudit " + name in capsys.readouterr().out


def test_run_writes_results_and_prints_table(capsys: pytest.CaptureFixture[str], fake_backends: None,
                                             tmp_path: Path) -> None:
    rc = main(["run", "--models", "user_models:tiny_linear", "--inputs", "user_models:tiny_inputs",
               "--backends", "fake-noisy", "fake-raise", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "user_models:tiny_linear" in out and "ERROR" in out
    assert "user_models:tiny_linear / fake-raise: error: RuntimeError: backend exploded" in out
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["schema"] == "flopaudit.results"
    assert {(r["backend"], r["status"]) for r in data["results"]} == {("fake-noisy", "ok"), ("fake-raise", "error")}
    csv = (tmp_path / "results.csv").read_text().splitlines()
    assert csv[0].startswith("model,backend,status,macs") and len(csv) == 3


def test_console_script_has_no_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flopaudit", "run", "--models", "no_such_model"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("flopaudit: error: unknown model 'no_such_model'")
    assert "Traceback" not in proc.stderr
