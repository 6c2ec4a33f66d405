"""The Python API: flopaudit.audit returns a DataFrame of integer counts."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import torch
from conftest import SmallConvNet, TwoInputLinear
from torch import nn

import flopaudit
from flopaudit.cli import main
from flopaudit.isolation import fingerprint


def test_audit_returns_one_row_per_backend() -> None:
    model = SmallConvNet()
    before = fingerprint(model)
    frame = flopaudit.audit(model, torch.randn(2, 3, 8, 8), backends=["reference", "fvcore", "torch-flop-counter"])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["backend"]) == ["reference", "fvcore", "torch-flop-counter"]
    assert set(frame["status"]) == {"ok"}
    assert str(frame["macs"].dtype) == "Int64"
    conv = 2 * 8 * 8 * 8 * 3 * 3 * 3  # batch x Cout x H x W x Cin x k x k
    fc = 2 * 8 * 10
    ref = frame.set_index("backend").loc["reference"]
    assert ref["macs"] == conv + fc and ref["ratio_to_reference"] == 1.0
    tfc = frame.set_index("backend").loc["torch-flop-counter"]
    assert tfc["raw_total"] == 2 * (conv + fc) and tfc["unit"] == "FLOP" and tfc["macs"] == conv + fc
    assert fingerprint(model) == before


def test_audit_takes_several_inputs_and_keywords() -> None:
    frame = flopaudit.audit(TwoInputLinear(), (torch.randn(3, 16), torch.randn(3, 8)), backends=["reference"])
    assert int(frame["macs"].iloc[0]) == 3 * 16 * 32 + 3 * 8 * 32
    from conftest import KwargsLinear

    frame = flopaudit.audit(KwargsLinear(), (torch.randn(3, 16),), {"scale": torch.randn(3, 16)},
                            backends=["reference", "thop"], isolate=False)
    assert list(frame["macs"]) == [3 * 16 * 32, 3 * 16 * 32]


def test_a_mapping_of_inputs_is_the_keyword_arguments(tmp_path: Path) -> None:
    """``audit(model, batch)`` with a dict, or a tokenizer's ``BatchEncoding`` (a mapping that is
    not a dict), calls ``model(**batch)``, in the API as for an ``--inputs`` factory; a dict
    meant as one positional argument goes in a tuple."""
    from collections import UserDict

    from user_models import MaskedLinear

    expected = 2 * 5 * 8 * 4
    batch = {"x": torch.randn(2, 5, 8), "mask": torch.ones(2, 5)}
    for given in (batch, UserDict(batch)):
        frame = flopaudit.audit(MaskedLinear(), given, backends=["reference", "thop"], isolate=False)
        assert list(frame["macs"]) == [expected, expected] and set(frame["status"]) == {"ok"}

    class TakesADict(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 4, bias=False)

        def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.fc(batch["x"])

    frame = flopaudit.audit(TakesADict(), (batch,), backends=["reference"], isolate=False)
    assert list(frame["macs"]) == [expected]
    unwrapped = flopaudit.audit(TakesADict(), batch, backends=["reference", "torchinfo"], isolate=False)
    assert set(unwrapped["status"]) == {"error"}
    assert all("got an unexpected keyword argument 'x'" in e and e.endswith("is given (batch,)")
               for e in unwrapped["error"])  # (torchinfo's own failure too, caused by it)
    failing = flopaudit.audit(MaskedLinear(), {"x": torch.randn(2, 5, 7)}, backends=["reference"], isolate=False)
    assert "(batch,)" not in failing["error"].iloc[0]  # another failure gets no such hint
    assert main(["run", "--models", "user_models:masked_linear", "--inputs", "user_models:tokenizer_style_inputs",
                 "--backends", "reference", "--no-cache", "--no-progress", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())["results"][0]
    assert (result["status"], result["macs"]) == ("ok", expected)


def test_audit_zoo_selects_by_tag_and_glob() -> None:
    frame = flopaudit.audit_zoo(tags=["custom"], backends=["reference"])
    from flopaudit.zoo import all_cases

    custom = sorted(c.id for c in all_cases() if "custom" in c.tags)
    assert sorted(frame["model"]) == custom and len(custom) >= 3
    expected = {c.id: c.expected_macs for c in all_cases() if "custom" in c.tags}
    assert all(int(m) == expected[i] for i, m in zip(frame["model"], frame["macs"]))
    glob = flopaudit.audit_zoo(models=["conv2d-*"], backends=["reference"])
    assert set(glob["model"]) == {c.id for c in all_cases() if c.id.startswith("conv2d-")}
