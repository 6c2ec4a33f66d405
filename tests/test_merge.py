"""``flopaudit merge``: shards join back into the whole run; duplicates and foreign files are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flopaudit.cli import main
from flopaudit.commands.merge import merge_runs
from flopaudit.errors import UserError
from flopaudit.records import AuditRun, CaseInfo, CountResult, Status, Unit
from flopaudit.results_io import load_results, write_results

MODELS = ["linear-3d", "conv2d-bias", "tied-weights"]


def result(model: str, backend: str, macs: int, torch_version: str = "2.14.1") -> CountResult:
    return CountResult(model, backend, "1.0", torch_version, Unit.MAC, Status.OK, raw_total=macs, macs=macs)


def saved(path: Path, results: list[CountResult], torch_version: str = "2.14.1") -> Path:
    cases = tuple(CaseInfo(m) for m in dict.fromkeys(r.model for r in results))
    env = (("torch", torch_version), ("flopaudit", "0.1.0"))
    write_results(AuditRun(tuple(results), cases, env), path)
    return path / "results.json"


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_merged_shards_equal_the_unsharded_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--models", *MODELS, "--backends", "reference", "torch-flop-counter", "--jobs", "1",
              "--no-cache", "--no-progress"]
    assert main(["run", *common, "--out", str(tmp_path / "whole")]) == 0
    for i in (1, 2):
        assert main(["run", *common, "--shard", f"{i}/2", "--out", str(tmp_path / f"part{i}")]) == 0
    parts = [load_results(tmp_path / f"part{i}") for i in (1, 2)]
    assert {c.id for c in parts[0].cases}.isdisjoint({c.id for c in parts[1].cases})
    assert main(["merge", str(tmp_path / "part2"), str(tmp_path / "part1" / "results.json"),
                 "--out", str(tmp_path / "merged")]) == 0
    assert "merged 2 files: 3 models, 6 results" in capsys.readouterr().out
    whole, merged = load_results(tmp_path / "whole"), load_results(tmp_path / "merged")
    strip = lambda run: [(r.model, r.backend, r.status, r.macs, r.per_op) for r in run.results]  # noqa: E731
    assert strip(merged) == strip(whole)
    assert [c.id for c in merged.cases] == [c.id for c in whole.cases] == MODELS
    assert (tmp_path / "merged" / "results.csv").exists() and (tmp_path / "merged" / "report.md").exists()


def test_duplicate_result_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = saved(tmp_path / "a", [result("linear-3d", "thop", 10)])
    b = saved(tmp_path / "b", [result("linear-3d", "thop", 20)])
    err = _error_line(capsys, ["merge", str(a), str(b), "--out", str(tmp_path / "m")])
    assert f"linear-3d / thop is in both {a} and {b}" in err and "--prefer-last" in err
    assert not (tmp_path / "m").exists()


def test_prefer_last_keeps_the_later_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = saved(tmp_path / "a", [result("linear-3d", "thop", 10), result("linear-3d", "fvcore", 30)])
    b = saved(tmp_path / "b", [result("linear-3d", "thop", 20)])
    assert main(["merge", str(a), str(b), "--prefer-last", "--out", str(tmp_path / "m")]) == 0
    assert "1 result(s) replaced by a later file" in capsys.readouterr().out
    merged = load_results(tmp_path / "m")
    assert [(r.backend, r.macs) for r in merged.results] == [("thop", 20), ("fvcore", 30)]


def test_union_of_cases_and_first_environment(tmp_path: Path) -> None:
    a = AuditRun((result("linear-3d", "thop", 10),), (CaseInfo("linear-3d"),), (("torch", "2.14.1"),))
    b = AuditRun((result("my:model", "thop", 5, "2.13.0"),), (CaseInfo("my:model"),), (("torch", "2.13.0"),))
    merged, notes = merge_runs([("a.json", a), ("b.json", b)])
    assert [c.id for c in merged.cases] == ["linear-3d", "my:model"]  # zoo ids first, then others
    env = dict(merged.environment)
    assert env["torch"] == "2.14.1" and env["merged_from"] == "a.json, b.json"
    assert env["note"] == notes[0] == "torch versions differ: 2.14.1 (a.json), 2.13.0 (b.json)"


def test_same_torch_versions_need_no_note(tmp_path: Path) -> None:
    a = AuditRun((result("linear-3d", "thop", 10),), (), (("torch", "2.14.1"),))
    b = AuditRun((result("linear-3d", "fvcore", 10),), (), (("torch", "2.14.1"),))
    merged, notes = merge_runs([("a", a), ("b", b)])
    assert notes == [] and "note" not in dict(merged.environment)


@pytest.mark.parametrize("key, first, second", [
    ("pass", "training step (loss: sum of outputs, optimizer: none)", None),
    ("dtype", "bfloat16", "float16"),
    ("device", "cuda", None),
])
def test_files_that_counted_different_things_are_not_merged(key: str, first: str, second: str | None) -> None:
    """A training-step shard and a forward-pass shard (or shards of another dtype or device) once
    merged into one report that called every count by the first file's pass."""
    a = AuditRun((result("linear-3d", "thop", 10),), (), (("torch", "2.14.1"), (key, first)))
    b = AuditRun((result("conv2d-bias", "thop", 10),), (), (("torch", "2.14.1"),) + (((key, second),) if second else ()))
    with pytest.raises(UserError, match=f"the files counted different things \\({key}: {first[:8]}"):
        merge_runs([("a", a), ("b", b)])
    merged, _ = merge_runs([("a", a), ("a2", a)], prefer_last=True)
    assert dict(merged.environment)[key] == first


def test_missing_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = saved(tmp_path / "a", [result("linear-3d", "thop", 10)])
    err = _error_line(capsys, ["merge", str(a), str(tmp_path / "nope.json"), "--out", str(tmp_path / "m")])
    assert "nope.json' does not exist" in err


def test_foreign_file_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "package.json"
    foreign.write_text(json.dumps({"name": "left-pad", "results": []}))
    err = _error_line(capsys, ["merge", str(foreign), "--out", str(tmp_path / "m")])
    assert "is not a valid flopaudit results file" in err


def test_merge_needs_out(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _error_line(capsys, ["merge", str(tmp_path / "a.json")])
    assert "--out" in err
