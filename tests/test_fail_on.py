"""``--fail-on error,timeout,unexplained,drift`` for ``flopaudit run`` and ``flopaudit check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flopaudit.cli import main
from flopaudit.errors import UserError
from flopaudit.fail_on import declared_drift, parse_fail_on, run_failures
from flopaudit.records import AuditRun, CaseInfo, CountResult, Status, Unit


def test_parse_fail_on() -> None:
    assert parse_fail_on(["error,timeout", "drift"]) == {"error", "timeout", "drift"}
    assert parse_fail_on("none") == frozenset()
    assert parse_fail_on(None) == frozenset()
    for bad in ("bogus", "error,warnings", ","):
        with pytest.raises(UserError):
            parse_fail_on(bad)


def _result(backend: str, macs: int | None, status: Status = Status.OK, **kw: object) -> CountResult:
    return CountResult(model="m", backend=backend, backend_version="1", torch_version="2", unit=Unit.MAC,
                       status=status, macs=macs, raw_total=macs, **kw)  # type: ignore[arg-type]


def test_run_failures_name_each_occurrence() -> None:
    from flopaudit.records import RulesetPrediction

    run = AuditRun((
        _result("reference", 100, params=10, predictions=(RulesetPrediction("thop", 100),)),
        _result("thop", 107),  # the ruleset predicts 100: 7 MACs unexplained
        _result("fvcore", None, Status.TIMEOUT, error="no result after 1 s"),
        _result("torchinfo", None, Status.ERROR, error="RuntimeError: boom\ntraceback..."),
    ), (CaseInfo("m", expected_macs=100, expected_params=12),))
    lines = run_failures(run, {"error", "timeout", "unexplained", "drift"})
    assert lines == [
        "timeout: m / fvcore: no result after 1 s",
        "error: m / torchinfo: RuntimeError: boom",
        "unexplained: m / thop: residual +7 MACs",
        "drift: m / reference: counts 10 params, the case declares 12",
    ]
    assert run_failures(run, {"error"}) == ["error: m / torchinfo: RuntimeError: boom"]
    assert run_failures(run, set()) == []
    assert declared_drift(AuditRun((_result("reference", 100, params=12),), (CaseInfo("m", expected_macs=100),))) == []


def _run(tmp_path: Path, *extra: str) -> int:
    return main(["run", "--models", "transformer-encoder-padding-mask", "--backends", "reference", "torchinfo",
                 "--no-cache", "--no-progress", "--out", str(tmp_path), *extra])


def test_run_exits_1_only_for_listed_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """torchinfo fails on a padded TransformerEncoder (its hooks read a nested tensor's sizes)."""
    assert _run(tmp_path) == 0
    assert _run(tmp_path, "--fail-on", "timeout,unexplained") == 0
    capsys.readouterr()
    assert _run(tmp_path, "--fail-on", "error") == 1
    out = capsys.readouterr().out
    assert "--fail-on error: 1 error" in out and "error: transformer-encoder-padding-mask / torchinfo" in out
    assert (tmp_path / "report.html").exists()  # reports are written before the exit status is decided


def test_unknown_class_is_a_usage_error_before_counting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path / "out", "--fail-on", "errors") == 2
    err = capsys.readouterr().err
    assert err.strip() == ("flopaudit: error: invalid --fail-on class 'errors'; valid: error, timeout, unexplained, "
                           "drift, none")
    assert not (tmp_path / "out").exists()


def test_check_fails_on_drift_by_default_and_on_what_is_listed(tmp_path: Path) -> None:
    goldens = tmp_path / "goldens"
    assert main(["snapshot", "--models", "linear-3d", "--backends", "reference", "thop", "--out", str(goldens),
                 "--no-isolate"]) == 0

    def check(*extra: str) -> int:
        return main(["check", "--goldens", str(goldens), "--no-isolate", *extra])

    assert check() == 0
    assert check("--fail-on", "error,timeout,unexplained,drift") == 0
    path = goldens / "linear-3d--thop.json"
    data = json.loads(path.read_text())
    data["macs"] += 1
    path.write_text(json.dumps(data))
    assert check() == 1  # drift, the default
    assert check("--fail-on", "error,unexplained") == 0  # drift not listed
    assert check("--fail-on", "none") == 0
    assert check("--fail-on", "unexplained,drift") == 1
    assert check("--fail-on", "drifts") == 2


def test_check_failures_classify_only_the_checked_cells() -> None:
    from flopaudit.fail_on import check_failures
    from flopaudit.goldens import compare
    from flopaudit.goldens.record import Golden
    from flopaudit.records import RulesetPrediction

    run = AuditRun((
        _result("reference", 100, predictions=(RulesetPrediction("thop", 100), RulesetPrediction("fvcore", 100))),
        _result("thop", 107),
        _result("fvcore", 103),
    ))
    thop = Golden.from_result(run.results[1])
    same = compare(thop, thop)
    assert check_failures([same], {"unexplained"}, [run]) == ["unexplained: m / thop: residual +7 MACs"]
    assert check_failures([same], {"drift", "error"}, [run]) == []
    moved = compare(Golden.from_result(_result("thop", 100)), thop)
    assert check_failures([moved], {"drift"}) == ["drift: m / thop: total 100 -> 107 (+7.0%)"]
