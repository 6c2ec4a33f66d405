"""The training pass through the command line, the cache, results and goldens.

Counts are by hand: ``user_models:tiny_linear`` is ``Linear(4, 2, bias=False)``
on a 3x4 input needing no gradient: forward 3*4*2 = 24 MACs, backward the
weight gradient only, 2x3 @ 3x4 = 24 MACs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flopaudit.cache import ResultCache
from flopaudit.cli import main
from flopaudit.errors import UserError
from flopaudit.goldens import Golden, golden_filename, names_from_filename
from flopaudit.passes import Pass, pass_of
from flopaudit.records import CountResult, PhaseCount, Status, Unit

MODEL = ["--models", "user_models:tiny_linear", "--inputs", "user_models:tiny_inputs"]


def _error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["run", *MODEL, "--loss", "user_models:squared_loss"], "--loss and --optimizer need --pass train"),
    (["run", *MODEL, "--optimizer", "adam"], "--loss and --optimizer need --pass train"),
    (["run", *MODEL, "--pass", "train", "--loss", "not-a-spec"], "cannot read loss 'not-a-spec'"),
    (["run", *MODEL, "--pass", "training"], "invalid choice: 'training'"),
    (["run", *MODEL, "--pass", "train", "--optimizer", "lion"],
     "invalid optimizer 'lion': choose one of sgd, adam, adamw, nadam"),
    (["run", *MODEL, "--pass", "train", "--optimizer", "user_models:SignMomentum(lr=x)"],
     "cannot read optimizer 'user_models:SignMomentum(lr=x)': arguments must be literals"),
    (["run", *MODEL, "--pass", "train", "--loss", "user_models:no_such_loss", "--no-progress"],
     "has no attribute 'no_such_loss'"),
    (["run", *MODEL, "--pass", "train", "--loss", "user_models:loss_raises", "--no-progress"],
     "loss 'user_models:loss_raises' raised: ValueError: no labels here"),
    (["explain", "user_models:tiny_linear", "--inputs", "user_models:tiny_inputs", "--backend", "thop",
      "--optimizer", "sgd"], "need --pass train"),
], ids=lambda v: v if isinstance(v, str) else "-".join(v)[-40:])
def test_pass_mistakes_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str],
                                            expected: str) -> None:
    assert expected in _error_line(capsys, [*argv, "--out", str(tmp_path)] if argv[0] == "run" else argv)


def test_run_counts_a_training_step(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = main(["run", *MODEL, "--pass", "train", "--optimizer", "sgd", "--loss", "user_models:squared_loss",
               "--backends", "reference", "torch-flop-counter", "thop", "--out", str(tmp_path), "--no-progress",
               "--no-cache"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "counted: one training step (loss: user_models:squared_loss, optimizer: sgd)" in out
    assert "model \\ training-step MACs" in out
    data = json.loads((tmp_path / "results.json").read_text())
    by_backend = {r["backend"]: r for r in data["results"]}
    ref = by_backend["reference"]
    assert ref["macs"] == 24 + 24
    assert {p["phase"]: p["macs"] for p in ref["phases"]} == {"forward": 24, "loss": 0, "backward": 24,
                                                                "optimizer": 0}
    # the loss: square 6 outputs (6), sum them (5); SGD: one add per weight element (8)
    assert {p["phase"]: p["extra_flops"] for p in ref["phases"]}["loss"] == 6 + 5
    assert {p["phase"]: p["extra_flops"] for p in ref["phases"]}["optimizer"] == 8
    assert ref["options"]["pass"] == "'train'" and ref["options"]["loss"] == "'user_models:squared_loss'"
    assert by_backend["torch-flop-counter"]["macs"] == 48
    assert by_backend["thop"]["status"] == "not applicable"
    assert data["environment"]["pass"].startswith("training step")
    # the reports say what was counted, and show each backend's phases
    markdown = (tmp_path / "report.md").read_text()
    assert "Counted: one training step (loss: user_models:squared_loss, optimizer: sgd)." in markdown
    assert "| model | backend | forward | loss | backward | optimizer | total |" in markdown
    assert "| user_models:tiny_linear | reference | 24 | 0 | 24 | 0 | 48 |" in markdown
    assert "| user_models:tiny_linear | thop |" not in markdown  # (not applicable: no count to split)
    html = (tmp_path / "report.html").read_text()
    assert 'id="phase-table"' in html and "Counted: one training step" in html
    # (a sentence of its own: the line break before it is trimmed from the template)
    assert "canonical count. <strong" in html


def test_inference_results_read_as_they_always_have() -> None:
    result = CountResult("m", "b", "1", "2", Unit.MAC, Status.OK, macs=3)
    assert "phases" not in result.to_dict()
    trained = CountResult("m", "b", "1", "2", Unit.MAC, Status.OK, macs=3,
                          phases=(PhaseCount("forward", 1, 2, (("", 1),)), PhaseCount("backward", 2)))
    assert CountResult.from_dict(json.loads(json.dumps(trained.to_dict()))) == trained
    assert CountResult.from_dict(result.to_dict()).phases == ()


def test_the_pass_is_part_of_the_cache_key(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    keys = {json.dumps(cache.case_key("linear-3d", pass_=p), sort_keys=True)
            for p in (Pass(), Pass("train"), Pass("train", optimizer="adam"), Pass("train", "m:loss"),
                      Pass("train", optimizer="user_models:SignMomentum"))}
    assert len(keys) == 5
    # where the user's optimizer lives, as for the model and the loss
    key = cache.case_key("linear-3d", pass_=Pass("train", optimizer="user_models:SignMomentum"))
    assert [Path(p).name for p in json.loads(json.dumps(key))["code"]] == ["user_models.py"]


def test_run_counts_a_step_of_the_users_optimizer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """``--optimizer module:function`` (a class here), made and stepped in the workers: 6 FLOPs an
    element of the 2x4 weight (see ``user_models.SignMomentum``); torch-flop-counter's step reads 0."""
    rc = main(["run", *MODEL, "--pass", "train", "--optimizer", "user_models:SignMomentum(lr=0.01)",
               "--backends", "reference", "torch-flop-counter", "--out", str(tmp_path), "--no-progress",
               "--no-cache"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "counted: one training step (loss: sum of outputs, optimizer: user_models:SignMomentum(lr=0.01))" in out
    data = json.loads((tmp_path / "results.json").read_text())
    by_backend = {r["backend"]: r for r in data["results"]}
    ref = by_backend["reference"]
    assert {p["phase"]: p["extra_flops"] for p in ref["phases"]}["optimizer"] == 6 * 8
    assert ref["options"]["optimizer"] == "'user_models:SignMomentum(lr=0.01)'"
    assert {p["phase"]: p["macs"] for p in by_backend["torch-flop-counter"]["phases"]}["optimizer"] == 0
    assert Pass.from_options(tuple(ref["options"].items())).optimizer == "user_models:SignMomentum(lr=0.01)"


def test_pass_records() -> None:
    step = Pass("train", "pkg.mod:loss", "adamw")
    assert Pass.from_options(tuple((k, repr(v)) for k, v in step.options().items())) == step
    assert Pass.from_options(()) == Pass() and Pass().options() == {}
    assert pass_of("train", optimizer="sgd") == Pass("train", None, "sgd")
    with pytest.raises(UserError, match="invalid pass"):
        Pass("eval")


def test_the_api_takes_the_loss_as_a_function(tmp_path: Path) -> None:
    """``audit(..., loss=lambda out: ...)`` (a notebook's loss, in no module): the counts run in
    children forked from this process, which have the function; results name it by
    ``module:qualified.name``; the reference prices the loss it runs (square 6 outputs, 6;
    their mean, 6: 5 additions and a division), and a pass read back from the options holds
    that name. Zoo cases are counted in workers that cannot be given a function."""
    import torch
    from torch import nn

    import flopaudit
    from flopaudit.reference import count

    model, x = nn.Linear(4, 2, bias=False), torch.randn(3, 4)
    frame = flopaudit.audit(model, x, pass_="train", loss=lambda out: out.square().mean(),
                            backends=["reference", "torch-flop-counter"])
    assert list(frame["macs"]) == [48, 48] and set(frame["status"]) == {"ok"}
    ref = count(model, x, pass_="train", loss=lambda out: out.square().mean())
    assert ref.phases["loss"].total.extra_flops == 6 + 6
    assert ref.phases["loss"].per_op.keys() == {"aten.pow.Tensor_Scalar", "aten.mean.default"}
    step = pass_of("train", lambda out: out.sum())
    assert step.options()["loss"] == (
        "test_train_pass:test_the_api_takes_the_loss_as_a_function.<locals>.<lambda>")
    assert Pass.from_options(tuple((k, repr(v)) for k, v in step.options().items())).loss == step.loss_name
    with pytest.raises(UserError, match="cannot be given a function"):
        flopaudit.audit_zoo(["linear-3d"], pass_="train", loss=lambda out: out.sum())
    with pytest.raises(UserError, match="not int"):
        pass_of("train", 3)  # type: ignore[arg-type]
    with pytest.raises(UserError, match="cannot read loss 'not-a-spec'"):
        pass_of("train", "not-a-spec")


def test_a_training_golden_names_its_pass() -> None:
    assert golden_filename("gpt2", "torch-flop-counter", "train") == "gpt2--torch-flop-counter.train.json"
    assert names_from_filename(Path("gpt2--torch-flop-counter.train.json")) == ("gpt2", "torch-flop-counter")
    result = CountResult("m", "reference", "1", "2", Unit.MAC, Status.OK, macs=3,
                         options=(("pass", "'train'"), ("optimizer", "'none'"), ("loss", "'sum of outputs'")),
                         phases=(PhaseCount("forward", 1), PhaseCount("backward", 2)))
    golden = Golden.from_result(result)
    assert golden.pass_ == Pass("train") and golden.to_dict()["phases"] == {"forward": 1, "backward": 2}
    assert Golden.from_dict(golden.to_dict()) == golden
    inference = Golden.from_result(CountResult("m", "reference", "1", "2", Unit.MAC, Status.OK, macs=3))
    assert "phases" not in inference.to_dict() and inference.pass_ == Pass()


def test_snapshot_and_check_a_training_step(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    argv = [*MODEL, "--backends", "reference", "--jobs", "1"]
    assert main(["snapshot", *argv, "--pass", "train", "--out", str(tmp_path)]) == 0
    assert main(["snapshot", *argv, "--out", str(tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["user_models_tiny_linear--reference.json", "user_models_tiny_linear--reference.train.json"]
    trained = json.loads((tmp_path / names[1]).read_text())
    assert trained["macs"] == 48 and trained["phases"] == {"backward": 24, "forward": 24, "loss": 0}
    capsys.readouterr()
    assert main(["check", "--goldens", str(tmp_path), "--jobs", "1"]) == 0
    assert "checked 2 goldens: 2 same" in capsys.readouterr().out
    assert main(["check", "--goldens", str(tmp_path), "--jobs", "1", "--pass", "train"]) == 0
    assert "checked 1 golden" in capsys.readouterr().out


def test_audit_counts_a_training_step_in_a_frame() -> None:
    import torch

    import flopaudit

    model = torch.nn.Linear(4, 2, bias=False)
    frame = flopaudit.audit(model, torch.randn(3, 4), pass_="train", optimizer="sgd", isolate=False)
    rows = frame.set_index("backend")
    # forward 3*4*2 = 24, backward the weight gradient 24; 3x forward = 72
    assert rows.loc["reference", "macs"] == 48 and rows.loc["rule-3x-forward", "macs"] == 72
    assert rows.loc["reference", "forward_macs"] == 24 and rows.loc["reference", "backward_macs"] == 24
    assert rows.loc["calflops", "macs"] == 72  # its forward x 3 (include_backPropagation)
    assert set(rows.index) == {"reference", "torch-flop-counter", "calflops", "rule-3x-forward", "rule-6nd",
                               "rule-chinchilla"}
    assert all(p.grad is None for p in model.parameters())


def test_a_zoo_case_whose_training_step_fails_on_a_batch_of_one_is_an_error_cell_saying_what_to_do() -> None:
    import torch
    from torch import nn

    from flopaudit.inputs import ModelInputs
    from flopaudit.run import run_audit
    from flopaudit.zoo.case import ModelCase

    case = ModelCase("linear-batchnorm", lambda: nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)),
                     lambda: ModelInputs((torch.randn(1, 4),)))
    run = run_audit([case], ["reference"], isolate=False, pass_="train")
    (result,) = run.results
    assert result.status is Status.ERROR
    assert "Expected more than 1 value per channel" in result.error
    assert result.error.endswith("give a batch of 2 or more (--input-shape or --inputs), or put the model in eval "
                                 "mode (--mode eval)")
    (ok,) = run_audit([case], ["reference"], isolate=False, pass_="train", mode="eval").results
    assert ok.status is Status.OK, ok.error
