"""Records are immutable, integer-valued and round-trip through JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

from flopaudit.records import (
    AuditRun,
    CaseInfo,
    CountResult,
    RuleContribution,
    RulesetPrediction,
    Status,
    Unit,
    breakdown,
)


def _result() -> CountResult:
    return CountResult(
        model="m", backend="b", backend_version="1.0", torch_version="2.x", unit=Unit.FLOP,
        status=Status.OK, raw_total=200, macs=100, params=5, batch_size=2,
        per_module=breakdown({"": 100, "fc": 100}), per_op=breakdown({"aten.mm": 100}),
        unsupported=breakdown({"aten.lstm": 2}), warnings=("w",), options=(("depth", "None"),),
        side_effects=("added attributes: <root>.x",), elapsed_s=0.5, extra=breakdown({"flops": 250}),
        predictions=(RulesetPrediction("fvcore", 90, (RuleContribution("skips aten.lstm", "unsupported", -10,
                                                                        (("rnn", -10),)),), (("", 90),)),),
    )


def test_result_is_frozen() -> None:
    r = _result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.macs = 3  # type: ignore[misc]


def test_breakdown_is_sorted_ints() -> None:
    assert breakdown({"b": 2.0, "a": 1}) == (("a", 1), ("b", 2))
    assert all(isinstance(v, int) for _, v in breakdown({"x": 3.0}))


def test_round_trip_through_json() -> None:
    noted = dataclasses.replace(_result(), backend="reference", notes=("no parameter received a gradient",))
    run = AuditRun((_result(), noted), (CaseInfo("m", ("t",), "(2x16)", 2, 100, 5, 0.01),))
    data = json.loads(json.dumps(run.to_dict()))
    again = AuditRun.from_dict(data)
    assert again.results == run.results
    assert again.cases == run.cases
    assert "notes" not in data["results"][0] and data["results"][1]["notes"] == ["no parameter received a gradient"]


def test_foreign_json_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a flopaudit results file"):
        AuditRun.from_dict({"results": []})
