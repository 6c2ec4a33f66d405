"""The command line: user mistakes end in one line and exit 2; runs write files."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fake_backends import FAKES, registered

from flopaudit.cli import COMMANDS, build_parser, main


@pytest.fixture()
def fake_backends() -> Iterator[None]:
    with registered(FAKES):
        yield


def _by_model(out: Path) -> dict[str, list[dict]]:
    """A run's results (``out/results.json``) by model."""
    by_model: dict[str, list[dict]] = {}
    for r in json.loads((out / "results.json").read_text())["results"]:
        by_model.setdefault(r["model"], []).append(r)
    return by_model


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
        (["run", "--models", "resnet18", "--backends", "fvcor"], "unknown backend 'fvcor' (did you mean 'fvcore'?)"),
        (["run", "--models", "resnet-18"], "unknown model 'resnet-18' (did you mean 'resnet18' or"),
        (["explain", "resnet-18", "--backend", "thop"], "unknown model 'resnet-18' (did you mean 'resnet18' or"),
        (["run", "--tags", "no-such-tag"], "unknown tag(s) no-such-tag"),
        (["run", "--models", "resnet18", "--input-shape", "1,a,3"], "invalid --input-shape '1,a,3'"),
        (["run", "--models", "no_such_pkg_xyz:build", "--input-shape", "1,4"], "cannot import module 'no_such_pkg_xyz'"),
        (["run", "--models", "user_models:missing", "--input-shape", "1,4"], "has no attribute 'missing'"),
        (["run", "--models", "user_models:NOT_CALLABLE", "--input-shape", "1,4"], "is not callable"),
        (["run", "--models", "user_models:tiny_linear"], "needs --input-shape"),
        (["run", "--models", "user_models:tiny_linear", "--inputs", "user_models:inputs_without_return", "--no-cache",
          "--no-progress"], "inputs factory 'user_models:inputs_without_return' returned None"),
        (["run", "--shard", "3/2"], "invalid --shard '3/2'"),
        (["run", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v)[:40],
)
def test_user_mistakes_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert expected in _error_line(capsys, argv)


def test_a_backend_named_twice_is_one_column(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["run", "--models", "linear-3d", "--backends", "reference", "thop", "reference", "--no-isolation",
                 "--no-cache", "--no-progress", "--out", str(tmp_path)]) == 0
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[-2:] == ["reference", "thop"] and header.count("reference") == 1
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["backend"] for r in results] == ["reference", "thop"]


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


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "abc"])
def test_timeout_must_be_positive_and_finite(capsys: pytest.CaptureFixture[str], value: str) -> None:
    err = _error_line(capsys, ["run", "--models", "linear-3d", f"--timeout={value}"])
    assert f"invalid --timeout {value!r}" in err


def test_unwritable_out_is_found_before_counting(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("counting started")

    monkeypatch.setattr("flopaudit.run.run_audit", no_run)
    err = _error_line(capsys, ["run", "--models", "linear-3d", "--out", str(blocker / "reports")])
    assert "cannot write reports to --out" in err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_output_files_follow_the_umask(tmp_path: Path, fake_backends: None, umask: int, mode: int) -> None:
    old = __import__("os").umask(umask)
    try:
        assert main(["run", "--models", "linear-3d", "--backends", "fake-noisy", "--no-isolation", "--no-progress",
                     "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]) == 0
    finally:
        __import__("os").umask(old)
    written = list((tmp_path / "out").iterdir()) + list((tmp_path / "cache").iterdir())
    assert written and {p.stat().st_mode & 0o777 for p in written} == {mode}


@pytest.mark.parametrize("argv", [["--help"], ["zoo"], ["zoo", "--tags", "hard"], ["backends", "--help"],
                                  ["run", "--help"], ["check", "--help"], ["cost", "--help"],
                                  ["cost", "resnet18", "--weights", "speed=1"]])
def test_help_and_zoo_answer_without_importing_torch(argv: list[str]) -> None:
    code = (f"import sys\nfrom flopaudit.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["cost", "--help"]])
def test_help_imports_no_code_that_runs_an_audit(argv: list[str]) -> None:
    """``--help`` builds every command's parser; the defaults it shows come from
    ``flopaudit.run_defaults``. Importing ``flopaudit.run`` for them (and the protocol and records
    it imports) made ``flopaudit --help`` 3.5x a bare interpreter, over its 3x target."""
    code = (f"import sys\nfrom flopaudit.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "heavy = {'flopaudit.run', 'flopaudit.execution.protocol', 'flopaudit.records'} & set(sys.modules)\n"
            "assert not heavy, sorted(heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_help_is_plain_text_and_shows_the_defaults_that_matter(capsys: pytest.CaptureFixture[str]) -> None:
    texts = []
    for name in COMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        texts.append(capsys.readouterr().out)
    assert not [t for t in texts if "``" in t or ":func:" in t or ":class:" in t]
    run_help = " ".join(texts[COMMANDS.index("run")].split())
    for default in ("(default: 120)", "(default: the usable cores", "(default: $XDG_CACHE_HOME/flopaudit"):
        assert default in run_help


@pytest.mark.parametrize("command", ["run", "snapshot", "check"])
def test_no_isolation_has_one_name_everywhere(capsys: pytest.CaptureFixture[str], command: str) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--no-isolation" in capsys.readouterr().out
    args = build_parser().parse_args([command, "--no-isolate"] + (["--goldens", "g"] if command == "check" else [])
                                     + (["--out", "o"] if command == "snapshot" else []))
    assert args.no_isolation  # the other spelling still works


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    proc = subprocess.run(f"{sys.executable} -m flopaudit zoo | head -n 1", shell=True, capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.stdout.startswith("id") and "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_meta_says_the_forward_reads_values_instead_of_blaming_the_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _error_line(capsys, ["run", "--models", "user_models:masked_linear", "--inputs", "user_models:masked_inputs",
                               "--meta", "--backends", "reference", "--no-cache", "--no-progress",
                               "--out", str(tmp_path / "a")])
    assert "reads a tensor's value during its forward pass" in err and "rejected input" not in err
    assert "; read in user_models:forward (line " in err, err
    assert err.endswith("count it without --meta, or, where an input's values are what it reads (a mask it checks), "
                        "without that input"), err
    # the same model on meta without the mask counts: 2 x 5 x 8 x 4 MACs
    assert main(["run", "--models", "user_models:masked_linear", "--inputs", "user_models:unmasked_inputs",
                 "--meta", "--backends", "reference", "--no-cache", "--no-progress",
                 "--out", str(tmp_path / "b")]) == 0
    result = json.loads((tmp_path / "b" / "results.json").read_text())["results"][0]
    assert result["status"] == "ok" and result["macs"] == 2 * 5 * 8 * 4


def test_meta_says_the_forward_makes_a_cpu_tensor_instead_of_blaming_the_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _error_line(capsys, ["run", "--models", "user_models:cpu_positions", "--input-shape", "2,8", "--meta",
                               "--backends", "reference", "--no-cache", "--no-progress", "--out", str(tmp_path)])
    assert "makes a tensor on another device during its forward pass" in err and "rejected input" not in err
    assert "factory without device=" in err and "without --meta" in err
    # where: the line of the model's forward that made it (user_models.py, _CPUPositions.forward)
    import inspect

    from user_models import _CPUPositions

    lines, start = inspect.getsourcelines(_CPUPositions.forward)
    line = start + next(i for i, text in enumerate(lines) if "torch.arange" in text)
    assert f"expected device meta!, raised in user_models, line {line})" in err, err


def test_meta_builds_on_the_cpu_a_model_whose_constructor_measures_it_and_says_what_each_way_met(
        tmp_path: Path) -> None:
    """A constructor that runs the model on a CPU tensor and reads a value it measured (ultralytics'
    detection models) builds neither under torch.device('meta') nor with empty_weights(): it is built on
    the CPU, its weights not initialised, and moved to meta, where it counts as on the CPU; the note says
    what each way met and on which line of the model's code."""
    import inspect

    from user_models import _MeasuredHead

    lines, start = inspect.getsourcelines(_MeasuredHead.__init__)
    read = start + next(i for i, text in enumerate(lines) if "float(self.stride[0])" in text)
    ran = start + next(i for i, text in enumerate(lines) if "torch.zeros" in text)
    forward = inspect.getsourcelines(_MeasuredHead.forward)[1] + 1
    argv = ["run", "--models", "user_models:measured_head", "--input-shape", "1,3,8,8", "--backends", "reference",
            "torch-flop-counter", "--no-cache", "--no-progress"]
    assert main([*argv, "--meta", "--out", str(tmp_path / "meta")]) == 0
    assert main([*argv, "--out", str(tmp_path / "cpu")]) == 0
    meta, cpu = (_by_model(tmp_path / d)["user_models:measured_head"] for d in ("meta", "cpu"))
    assert [r["status"] for r in meta] == ["ok", "ok"], meta
    # (4 x 3 x 3 x 3 + 4) x 4 x 4, and the batch norm's parameters
    assert [(r["macs"], r["params"]) for r in meta] == [(r["macs"], r["params"]) for r in cpu] == [
        (4 * 27 * 16, 4 * 27 + 4 + 8)] * 2
    note = (
        "under torch.device('meta'), it read a tensor's value (RuntimeError: Tensor.item() cannot be called on meta "
        f"tensors) in user_models:__init__ (line {read}), called from user_models:measured_head (line "
        f"{read + 7}); with empty_weights() (parameters and buffers on meta, other tensors where the code makes them), it "
        "used a tensor it made on another device with meta tensors (RuntimeError: Tensor on device meta is not "
        f"on the expected device cpu!) in user_models:forward (line {forward}), called from user_models:__init__ "
        f"(line {ran}); built on the CPU instead, its weights made but not initialised, then moved to the meta "
        "device: what its constructor wrote took memory until the move")
    assert all(note in r["warnings"] for r in meta), meta[0]["warnings"]


def test_meta_says_what_each_way_of_building_met_where_none_builds(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A constructor that checks what its initialiser did builds only where its weights hold values: not
    on meta, and not on the CPU with initialisation skipped. The error says what each way met and on
    which line of the model's code."""
    import inspect

    from user_models import _ChecksItsInit

    lines, start = inspect.getsourcelines(_ChecksItsInit.__init__)
    check = start + next(i for i, text in enumerate(lines) if "torch.allclose" in text)
    err = _error_line(capsys, ["run", "--models", "user_models:checks_its_init", "--input-shape", "2,4", "--meta",
                               "--backends", "reference", "--no-cache", "--no-progress", "--out", str(tmp_path)])
    called = f"called from user_models:checks_its_init (line {check + 8})"
    assert err == (
        "flopaudit: error: model 'user_models:checks_its_init' failed to build on the meta device: under "
        "torch.device('meta'), it read a tensor's value (RuntimeError: Tensor.item() cannot be called on meta "
        f"tensors) in user_models:__init__ (line {check}), {called}; with empty_weights() (parameters and buffers "
        "on meta, other tensors where the code makes them), it used a tensor it made on another device with meta "
        f"tensors (RuntimeError: Tensor on device cpu is not on the expected device meta!) in user_models:__init__ "
        f"(line {check}), {called}; on the CPU (its weights not initialised, to be moved to meta), it raised "
        f"ValueError: the weight is not orthogonal in user_models:__init__ (line {check + 1}), {called}: count it "
        "without --meta"), err
    # without --meta it builds and counts
    assert main(["run", "--models", "user_models:checks_its_init", "--input-shape", "2,4", "--backends",
                 "reference", "--no-cache", "--no-progress", "--out", str(tmp_path / "cpu")]) == 0
    assert _by_model(tmp_path / "cpu")["user_models:checks_its_init"][0]["macs"] == 2 * 4 * 4


@pytest.mark.skipif(not hasattr(torch, "_grouped_mm"), reason="torch._grouped_mm: torch 2.8 and later")
def test_a_mixture_of_experts_model_counts_on_meta_as_on_the_cpu(tmp_path: Path) -> None:
    """Qwen3-MoE given an attention mask: on meta it reads the mask unless traced, and its experts'
    float32 grouped products are refused by torch's meta kernel. Both are worked round, every cell says
    how, and the reference's MACs and parameters equal the CPU's."""
    pytest.importorskip("transformers")
    from flopaudit.reference.meta_workarounds import GROUPED_NOTE

    argv = ["run", "--models", "user_models:qwen3_moe_tiny", "--inputs", "user_models:gpt2_ids_masked",
            "--backends", "reference", "torch-flop-counter", "--no-cache", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "cpu")]) == 0
    assert main([*argv, "--meta", "--out", str(tmp_path / "meta")]) == 0
    cpu, meta = (_by_model(tmp_path / d)["user_models:qwen3_moe_tiny"] for d in ("cpu", "meta"))
    assert [r["status"] for r in meta] == ["ok", "ok"], meta
    assert (meta[0]["macs"], meta[0]["params"]) == (cpu[0]["macs"], cpu[0]["params"])
    for r in meta:
        assert GROUPED_NOTE in r["warnings"], r["warnings"]
        assert any(w.startswith("on meta the model's code asks whether it is traced") for w in r["warnings"])
    assert not any(GROUPED_NOTE == w for r in cpu for w in r["warnings"])


# (autocast_on, the same workaround as autocast_off, runs in the slow tier: the default tier's time)
@pytest.mark.parametrize("model", ["autocast_off", pytest.param("autocast_on", marks=pytest.mark.slow),
                                   "legacy_buffer"])
def test_meta_counts_a_model_that_asks_for_autocast_or_keeps_a_legacy_buffer_as_the_cpu(tmp_path: Path,
                                                                                      model: str) -> None:
    """x-transformers' ``autocast(x.device.type, enabled=False)``, which raises on meta, and its ALiBi slopes
    made with ``torch.Tensor([...])``, which ``torch.device("meta")`` does not reach: with --meta each
    counts as on the CPU (the trial forward's failure reaches the workaround through flopaudit's own error)."""
    from flopaudit.reference.meta_workarounds import AUTOCAST_NOTE

    argv = ["run", "--models", f"user_models:{model}", "--input-shape", "2,8", "--backends", "reference",
            "torch-flop-counter", "--no-cache", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "cpu")]) == 0
    assert main([*argv, "--meta", "--out", str(tmp_path / "meta")]) == 0
    cpu, meta = (_by_model(tmp_path / d)[f"user_models:{model}"] for d in ("cpu", "meta"))
    assert [r["status"] for r in meta] == ["ok", "ok"], meta
    assert [(r["macs"], r["params"]) for r in meta] == [(r["macs"], r["params"]) for r in cpu]
    assert all((AUTOCAST_NOTE in r["warnings"]) == model.startswith("autocast") for r in meta)


def test_meta_builds_again_with_empty_weights_a_model_whose_constructor_skips_work_on_meta(tmp_path: Path) -> None:
    """A constructor that skips work on meta tensors and a forward that refuses to run without it
    (torchtune's Llama 3 rotary embedding): built under torch.device("meta") its forward fails; built
    again with empty_weights() it counts as on the CPU, and says so."""
    argv = ["run", "--models", "user_models:table_skipped_on_meta", "--input-shape", "2,8", "--backends", "reference",
            "torch-flop-counter", "--no-cache", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "cpu")]) == 0
    assert main([*argv, "--meta", "--out", str(tmp_path / "meta")]) == 0
    cpu, meta = (_by_model(tmp_path / d)["user_models:table_skipped_on_meta"] for d in ("cpu", "meta"))
    assert [r["status"] for r in meta] == ["ok", "ok"], meta
    assert [(r["macs"], r["params"]) for r in meta] == [(r["macs"], r["params"]) for r in cpu]
    for r in meta:
        [note] = [w for w in r["warnings"] if w.startswith("its forward failed built under torch.device('meta')")]
        assert "RuntimeError: table is not built" in note and "built with empty_weights()" in note, note
    assert not any("empty_weights" in w for r in cpu for w in r["warnings"])


# (among several models in the slow tier, for the default tier's time: that path is the one every other
# model error among several takes, e.g. test_meta_counts_the_other_models_when_one_of_several_fails_there)
@pytest.mark.parametrize("strict", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_a_model_failing_in_the_dtype_it_was_cast_to_is_said_to_be(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path, strict: bool) -> None:
    """--dtype bfloat16 casts the model and its inputs once built; a forward that makes a float32 tensor
    of its own then fails on a dtype mismatch, which is not the input's fault: the error says what was cast."""
    argv = ["run", "--models", "user_models:float32_projection", "--input-shape", "2,8", "--backends", "reference",
            "--dtype", "bfloat16", "--no-cache", "--no-progress", "--out", str(tmp_path)]
    if strict:
        err = _error_line(capsys, argv)
    else:  # among several models: that model's error, in its cells
        assert main([*argv[:2], "user_models:float32_projection,user_models:linear_8_to_4", *argv[3:]]) == 0
        [err] = [r["error"] for r in json.loads((tmp_path / "results.json").read_text())["results"]
                 if r["model"] == "user_models:float32_projection"]
    assert "BFloat16" in err and ("the model and its floating inputs were cast to bfloat16 (--dtype) once built: a "
                                  "tensor its code makes in float32") in err, err
    assert main(["run", "--models", "user_models:float32_projection", *argv[3:7], "--no-cache", "--no-progress",
                 "--out", str(tmp_path / "f32")]) == 0


def test_meta_says_an_output_shape_depends_on_values_instead_of_blaming_the_input(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # boolean-mask indexing (torch.nonzero), as graph libraries do dropping self loops
    err = _error_line(capsys, ["run", "--models", "user_models:positive_mean", "--input-shape", "2,8", "--meta",
                               "--backends", "reference", "--no-cache", "--no-progress", "--out", str(tmp_path)])
    assert "output's shape depends on tensor values" in err and "x[mask]" in err and "without --meta" in err
    assert "rejected input" not in err and "run it without --meta to tell" not in err


def test_meta_counts_the_other_models_when_one_of_several_fails_there(tmp_path: Path) -> None:
    models = "user_models:positive_mean,user_models:linear_8_to_4,user_models:cpu_positions,user_models:checks_its_init"
    assert main(["run", "--models", models, "--input-shape", "2,8", "--meta", "--backends", "reference", "thop",
                 "--no-cache", "--no-progress", "--out", str(tmp_path)]) == 0
    by_model = _by_model(tmp_path)
    assert [r["status"] for r in by_model["user_models:linear_8_to_4"]] == ["ok", "ok"]
    assert [r["macs"] for r in by_model["user_models:linear_8_to_4"]] == [2 * 8 * 4] * 2
    for model, words in (("user_models:positive_mean", "output's shape depends on tensor values"),
                         ("user_models:cpu_positions", "factory without device="),
                         ("user_models:checks_its_init", "model failed to build on the meta device: under "
                                                         "torch.device('meta'), it read a tensor's value")):
        assert [r["status"] for r in by_model[model]] == ["error", "error"]
        assert all(words in r["error"] and "without --meta" in r["error"] for r in by_model[model])


def test_the_other_models_are_counted_when_one_of_several_fails_to_build_or_run(tmp_path: Path) -> None:
    """As a user sweeping a library's models meets it: one whose constructor raises, one returning no module,
    one rejecting the shape; the run goes on and each of them is its own error."""
    models = ("user_models:raising_factory,user_models:linear_8_to_4,user_models:tiny_linear,"
              "user_models:not_a_model")
    assert main(["run", "--models", models, "--input-shape", "2,8", "--backends", "reference", "thop",
                 "--no-cache", "--no-progress", "--out", str(tmp_path)]) == 0
    by_model = _by_model(tmp_path)
    assert [(r["status"], r["macs"]) for r in by_model["user_models:linear_8_to_4"]] == [("ok", 2 * 8 * 4)] * 2
    for model, words in (("user_models:raising_factory", "RuntimeError: no weights for you"),
                         ("user_models:tiny_linear", "rejected input (2x8)"),
                         ("user_models:not_a_model", "returned int, not a torch.nn.Module")):
        assert [r["status"] for r in by_model[model]] == ["error", "error"]
        assert all(words in r["error"] for r in by_model[model]), by_model[model]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_each_of_several_models_is_built_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str) -> None:
    """The models are checked before any count starts only until one builds and runs: a model that failed
    there (raised, hung) is not built again, and one that passed is counted where it was built."""
    builds = tmp_path / "builds.txt"
    monkeypatch.setenv("FLOPAUDIT_TEST_BUILDS", str(builds))
    models = "user_models:logged_raising,user_models:logged_hanging,user_models:logged_linear_a,user_models:logged_linear_b"
    assert main(["run", "--models", models, "--input-shape", "2,8", "--backends", "reference", "thop",
                 "--timeout", "2", "--jobs", jobs, "--no-cache", "--no-progress", "--out", str(tmp_path / "out")]) == 0
    assert sorted(builds.read_text().split()) == ["a", "b", "hanging", "raising"]
    by_model = _by_model(tmp_path / "out")
    assert [(r["status"], r["macs"]) for r in by_model["user_models:logged_linear_a"]] == [("ok", 2 * 8 * 4)] * 2
    assert [(r["status"], r["macs"]) for r in by_model["user_models:logged_linear_b"]] == [("ok", 2 * 8 * 2)] * 2
    assert [r["status"] for r in by_model["user_models:logged_hanging"]] == ["timeout"] * 2
    assert all("did not finish within 2 s" in r["error"] for r in by_model["user_models:logged_hanging"])
    assert [r["status"] for r in by_model["user_models:logged_raising"]] == ["error"] * 2
    assert all("no weights for you" in r["error"] for r in by_model["user_models:logged_raising"])

    # every model failing the check: nothing left to count, each says why
    assert main(["run", "--models", "user_models:logged_raising,user_models:not_a_model", "--input-shape", "2,8",
                 "--backends", "reference", "--jobs", jobs, "--no-cache", "--no-progress",
                 "--out", str(tmp_path / "none")]) == 0
    assert [r["status"] for rs in _by_model(tmp_path / "none").values() for r in rs] == ["error"] * 2


def test_a_loss_failing_on_one_model_of_several_is_its_error_once_another_ran_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The loss is tried on the first model that runs, before any count: failing there stops the run (it may
    be the loss's mistake); failing on a later model's output (a tuple here) is that model's error."""
    argv = ["--input-shape", "2,8", "--pass", "train", "--loss", "user_models:squared_loss", "--backends", "reference",
            "--jobs", "1", "--no-cache", "--no-progress", "--out", str(tmp_path)]
    assert main(["run", "--models", "user_models:linear_8_to_4,user_models:pair_output", *argv]) == 0
    by_model = _by_model(tmp_path)
    assert [r["status"] for r in by_model["user_models:linear_8_to_4"]] == ["ok"]
    [pair] = by_model["user_models:pair_output"]
    assert pair["status"] == "error" and "loss 'user_models:squared_loss' raised: AttributeError" in pair["error"]
    err = _error_line(capsys, ["run", "--models", "user_models:pair_output,user_models:linear_8_to_4", *argv])
    assert "loss 'user_models:squared_loss' raised: AttributeError" in err


@pytest.mark.parametrize("inputs", ["meta_inputs", "cpu_inputs_16"])
def test_a_model_built_on_meta_by_its_own_code_is_counted_as_meta_counts_it(tmp_path: Path, inputs: str) -> None:
    """No --meta, but the factory builds on the meta device: each backend gets what --meta gives it (those
    not probed there, or wrong there, are not applicable with the reason), in the CLI and in audit(). Inputs
    made on the CPU are moved to meta, as --meta moves them (open_clip's create_model(device='meta'))."""
    import user_models
    from user_models import meta_mlp

    from flopaudit import audit
    from flopaudit.adapters import get_backend

    backends = ["reference", "thop", "deepspeed", "torch-profiler"]
    assert main(["run", "--models", "user_models:meta_mlp", "--inputs", f"user_models:{inputs}", "--backends",
                 *backends, "--no-cache", "--no-progress", "--out", str(tmp_path)]) == 0
    cli = {r["backend"]: r for r in json.loads((tmp_path / "results.json").read_text())["results"]}
    api = audit(meta_mlp(), getattr(user_models, inputs)(), backends=backends).set_index("backend")
    for backend in backends:
        allowed = get_backend(backend).meta.allowed
        assert cli[backend]["status"] == api.loc[backend, "status"] == ("ok" if allowed else "not applicable")
        if allowed:  # 8 x (16 x 32 + 32 x 4)
            assert cli[backend]["macs"] == api.loc[backend, "macs"] == 8 * (16 * 32 + 32 * 4)
        else:
            assert cli[backend]["error"].startswith("cannot count on the meta device")
    assert not get_backend("deepspeed").meta.allowed and get_backend("thop").meta.allowed


def test_meta_says_what_transformers_reads_and_what_to_give_instead() -> None:
    """GPT-2 looks for padding tokens in input_ids when no attention_mask is given, and reads the attention
    mask it is given to see whether it can leave it out: on meta each read is named, with what to do."""
    pytest.importorskip("transformers")
    import torch
    from user_models import gpt2_ids, gpt2_ids_masked, gpt2_tiny

    from flopaudit.execution.meta import meta_failure
    from flopaudit.inputs import ModelInputs

    with torch.device("meta"):
        model = gpt2_tiny()
    words = []
    for inputs in (gpt2_ids(), gpt2_ids_masked()):
        with pytest.raises(RuntimeError) as caught:
            model(**{k: v.to("meta") for k, v in inputs.items()})
        words.append(meta_failure(caught.value, ModelInputs((), inputs).describe()))
    assert "; read in transformers.modeling_utils:warn_if_padding_and_no_attention_mask (line " in words[0], words[0]
    assert "called from transformers.models.gpt2.modeling_gpt2:forward (line " in words[0], words[0]
    assert words[0].endswith("transformers looks for padding tokens in input_ids when no attention_mask is given: "
                             "give an attention_mask with the inputs, or count it without --meta"), words[0]
    assert "; read in transformers.masking_utils:" in words[1], words[1]
    assert words[1].endswith("transformers reads the attention mask (the one given) to see whether it can leave it "
                             "out: count it without --meta, or without the attention_mask input where the model does "
                             "not then look for padding tokens in input_ids (GPT-2 does)"), words[1]


# (with a mask in the slow tier, for the default tier's time: tests/test_reference_meta.py counts a model
# given a mask on meta in process)
@pytest.mark.parametrize("inputs", ["gpt2_ids", pytest.param("gpt2_ids_masked", marks=pytest.mark.slow)])
def test_a_model_that_reads_values_on_meta_is_counted_in_its_traced_branch(tmp_path: Path, inputs: str) -> None:
    """transformers asks whether it is traced before each of those reads and leaves them out under a trace:
    on meta it is answered yes, counted in that branch with a note saying so, and its MACs and parameters are
    those of the same model and inputs counted on the CPU."""
    pytest.importorskip("transformers")
    counts = {}
    for where in ("cpu", "meta"):
        out = tmp_path / where
        assert main(["run", "--models", "user_models:gpt2_tiny", "--inputs", f"user_models:{inputs}",
                     "--backends", "reference", "--no-cache", "--no-progress", "--out", str(out),
                     *(["--meta"] if where == "meta" else [])]) == 0
        counts[where] = json.loads((out / "results.json").read_text())["results"][0]
    meta, cpu = counts["meta"], counts["cpu"]
    assert meta["status"] == "ok" and (meta["macs"], meta["params"]) == (cpu["macs"], cpu["params"])
    note = next(w for w in meta["warnings"] if w.startswith("on meta the model's code asks whether it is traced"))
    assert "transformers.utils.import_utils:is_jit_tracing" in note, note
    assert not any("asks whether it is traced" in w for w in cpu["warnings"])


def test_meta_failure_cuts_a_long_message_at_a_word() -> None:
    from flopaudit.execution.meta import meta_failure

    words = meta_failure(NotImplementedError("The register_meta function for torch.nonzero() raises unimplemented "
                                             "by default, as a correct data-independent implementation does not "
                                             "exist. This implementation returns a fake value"))
    assert "does not exist. This ...)" in words and "implementation)" not in words, words


def test_meta_failure_words_name_every_value_shaped_operator() -> None:
    import torch

    from flopaudit.execution.meta import meta_failure

    for op in (lambda x: torch.nonzero(x), lambda x: torch.unique(x), lambda x: x.masked_select(x > 0),
               lambda x: torch.where(x > 0)):
        with pytest.raises(NotImplementedError) as caught:
            op(torch.randn(3, device="meta"))
        assert "output's shape depends on tensor values" in meta_failure(caught.value)
    assert "run it without --meta to tell" in meta_failure(NotImplementedError(
        "aten::_fft_r2c: attempted to run this operator with Meta tensors, but there was no fake impl"))


def test_a_forward_that_differentiates_is_counted_with_autograd_on(tmp_path: Path) -> None:
    assert main(["run", "--models", "user_models:forces", "--input-shape", "4,3", "--backends", "reference", "thop",
                 "--no-cache", "--no-progress", "--out", str(tmp_path)]) == 0
    results = {r["backend"]: r for r in json.loads((tmp_path / "results.json").read_text())["results"]}
    reference = results["reference"]
    # energy: 4 x (3 x 16 + 16 x 1); its gradient by the positions: 4 x (1 x 16 + 16 x 3), no weight gradients
    assert reference["status"] == "ok" and reference["macs"] == 4 * (3 * 16 + 16) + 4 * (16 + 16 * 3)
    assert any("differentiates" in w for w in reference["warnings"])
    assert results["thop"]["status"] == "error"  # it runs the model under torch.no_grad(), as outside flopaudit


def test_meta_says_a_failure_there_may_be_the_input_or_a_meta_kernel(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = _error_line(capsys, ["run", "--models", "user_models:train_only_head", "--input-shape", "3,5", "--meta",
                               "--backends", "reference", "--no-cache", "--no-progress", "--out", str(tmp_path)])
    assert "failed on the meta device with input (3x5)" in err and "run it without --meta to tell" in err


@pytest.mark.parametrize("meta", [False, True])
def test_a_bare_assert_the_input_fails_says_which_and_where(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                             meta: bool) -> None:
    """An ``assert`` without a message (timm's attention layers check their input size so) raises an empty
    AssertionError: the error names the statement that failed and its line, not "AssertionError: AssertionError"."""
    import inspect

    from user_models import _AssertsItsWidth

    lines, start = inspect.getsourcelines(_AssertsItsWidth.forward)
    line = start + next(i for i, text in enumerate(lines) if "assert x.shape" in text)
    err = _error_line(capsys, ["run", "--models", "user_models:asserts_its_width", "--input-shape", "2,4",
                               *(["--meta"] if meta else []), "--backends", "reference", "--no-cache",
                               "--no-progress", "--out", str(tmp_path)])
    said = f"AssertionError: forward (user_models.py:{line}): assert x.shape[-1] == 8"
    if meta:
        assert err.startswith(f"flopaudit: error: model 'user_models:asserts_its_width' failed on the meta device "
                              f"with input (2x4): {said}, raised in user_models, line {line}"), err
    else:
        assert err.startswith(f"flopaudit: error: model 'user_models:asserts_its_width' rejected input (2x4): {said}"), err


@pytest.mark.parametrize("mode, macs", [(None, 3 * 4 * 4), ("eval", 3 * 4 * 4), ("train", 3 * 4 * 4 + 3 * 4 * 2)])
def test_mode_chooses_train_or_eval_and_module_function_models_count_in_eval(
        tmp_path: Path, mode: str | None, macs: int) -> None:
    extra = ["--mode", mode] if mode else []
    assert main(["run", "--models", "user_models:train_only_head", "--input-shape", "3,4", "--backends", "reference",
                 "--no-cache", "--no-progress", "--out", str(tmp_path), *extra]) == 0
    (result,) = json.loads((tmp_path / "results.json").read_text())["results"]
    assert result["macs"] == macs


def test_a_model_taking_token_ids_says_how_to_give_them(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    common = ["run", "--models", "user_models:token_classifier", "--backends", "reference", "--no-cache",
              "--no-progress"]
    err = _error_line(capsys, [*common, "--input-shape", "1,16", "--out", str(tmp_path / "a")])
    assert "rejected input (1x16)" in err and "'indices'" in err
    assert "--input-shape makes a float tensor (torch.randn): give them with --inputs module:function" in err
    assert main([*common, "--inputs", "user_models:token_ids", "--out", str(tmp_path / "b")]) == 0


def test_a_training_step_on_a_batch_of_one_says_how_to_count_it(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    common = ["run", "--models", "user_models:linear_batchnorm", "--pass", "train", "--backends", "reference",
              "--no-cache", "--no-progress"]
    err = _error_line(capsys, [*common, "--input-shape", "1,4", "--out", str(tmp_path / "a")])
    assert "rejected input (1x4)" in err and "Expected more than 1 value per channel" in err
    assert "give a batch of 2 or more (--input-shape or --inputs), or put the model in eval mode (--mode eval)" in err
    for extra in (["--input-shape", "2,4"], ["--input-shape", "1,4", "--mode", "eval"]):
        out = tmp_path / "-".join(extra)
        assert main([*common, *extra, "--out", str(out)]) == 0
        (result,) = json.loads((out / "results.json").read_text())["results"]
        assert result["status"] == "ok", result


def test_progress_in_a_log_is_one_line_per_model_without_carriage_returns(
        capsys: pytest.CaptureFixture[str]) -> None:
    from flopaudit.commands.run import Progress
    from flopaudit.records import CountResult, Status, Unit

    progress = Progress(2, 2)  # stderr is not a terminal under capsys
    for model in ("a", "b"):
        for backend in ("x", "y"):
            progress(model, backend, None)
            progress(model, backend, CountResult(model, backend, "1", "2", Unit.MAC, Status.OK, macs=1))
    progress.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [line.split(":")[1].strip() for line in err.splitlines()] == ["a", "b"]
    assert "2/2 counted" in err.splitlines()[0] and "(4/4 counts" in err.splitlines()[1]


def test_a_module_in_the_working_directory_is_found_by_the_console_script(tmp_path: Path) -> None:
    """``flopaudit run -m mynet:build`` from the directory holding ``mynet.py``, as ``python -m``
    would find it (the console script, unlike ``python -m``, has no working directory on sys.path)."""
    import shutil

    script = shutil.which("flopaudit", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("no flopaudit console script next to this interpreter")
    (tmp_path / "mynet.py").write_text("from torch import nn\n\ndef build():\n    return nn.Linear(4, 3)\n")
    proc = subprocess.run([script, "run", "-m", "mynet:build", "--input-shape", "2,4", "-b", "reference",
                           "--no-progress", "--no-cache", "--out", "out"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "mynet:build" in proc.stdout and "24 " in proc.stdout  # 2 x 4 x 3 MACs


def test_the_working_directory_hides_nothing_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flopaudit.callables import load_callable

    (tmp_path / "flopaudit_probe_here.py").write_text("def build():\n    return 'here'\n")
    (tmp_path / "json.py").write_text("def dumps(x):\n    return 'shadowed'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert load_callable("flopaudit_probe_here:build")() == "here"
    assert sys.path[-1] == str(tmp_path)  # looked for last
    assert load_callable("json:dumps")([1]) == "[1]"  # the standard library's, not the file here


def test_a_table_wider_than_the_terminal_comes_in_blocks_that_fit() -> None:
    from flopaudit.table import format_table, format_table_blocks

    header = ["model", *(f"backend-{i}" for i in range(7))]
    rows = [["resnet50", *(f"{i}.{i}G (1.00{i}x)" for i in range(7))], ["vit", *(["n/a"] * 7)]]
    full = format_table(header, rows)
    assert format_table_blocks(header, rows, width=None) == full
    assert format_table_blocks(header, rows, width=len(full.splitlines()[0]) + 10) == full
    blocks = format_table_blocks(header, rows, width=60).split("\n\n")
    assert len(blocks) > 1
    seen = []
    for block in blocks:
        lines = block.splitlines()
        assert all(len(line) <= 60 for line in lines)
        assert lines[0].startswith("model") and lines[2].startswith("resnet50") and lines[3].startswith("vit")
        seen += lines[0].split()[1:]
    assert seen == header[1:]  # every column once, in order
    assert format_table_blocks(header, rows, width=10).count("\n\n") == 6  # one column a block at the narrowest


def test_run_fits_its_table_and_verdict_to_columns(capsys: pytest.CaptureFixture[str], fake_backends: None,
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "70")
    rc = main(["run", "--models", "user_models:tiny_linear", "--inputs", "user_models:tiny_inputs",
               "--backends", "reference", "fake-noisy", "fake-raise", "thop", "torchinfo", "--out", str(tmp_path),
               "--no-progress", "--no-cache"])
    assert rc == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 70 for line in out.splitlines() if not line.startswith(("wrote ", "cache:"))), out
    assert out.count("model \\ MACs") >= 2  # the backend columns came in blocks


def test_backends_keeps_to_the_width_and_lists_why_a_backend_is_unavailable(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from flopaudit.adapters import backends

    monkeypatch.setenv("COLUMNS", "80")
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert all(len(line) <= 80 for line in out.splitlines()), out
    for b in backends().values():
        assert b.name in out
        if not b.available():
            assert f"{b.name}: " in out  # its reason, under the table


def test_zoo_runs_its_tags_on_over_more_lines_on_a_narrow_terminal(capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["zoo", "--default"]) == 0
    wide = capsys.readouterr().out
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["zoo", "--default"]) == 0
    narrow = capsys.readouterr().out
    assert max(len(line) for line in wide.splitlines()) > 100  # the test means something
    assert all(len(line) <= 100 for line in narrow.splitlines()), narrow

    def tags_by_case(out: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        case = ""
        for line in out.splitlines()[2:]:
            if not line.strip() or line.endswith("case(s)"):
                continue
            if not line.startswith(" "):
                case = line.split()[0]
            tags[case] = tags.get(case, "") + line.split()[-1]
        return tags

    assert tags_by_case(narrow) == tags_by_case(wide)  # every tag still there, in order


def test_a_last_column_wraps_at_its_separator() -> None:
    from flopaudit.table import format_table, wrap_last_column

    header = ["id", "tags"]
    rows = [["a", "one,two,three"], ["bb", "averyveryverylongtag,x"], ["c", None]]
    assert wrap_last_column(header, rows, None) == [list(r) for r in rows]
    assert wrap_last_column(header, rows, 80) == [list(r) for r in rows]  # it fits
    assert wrap_last_column(header, rows, 12) == [
        ["a", "one,two,"], ["", "three"],
        ["bb", "averyveryverylongtag,"], ["", "x"],  # never narrower than a part
        ["c", ""],
    ]
    assert all(len(line) <= 12 for line in format_table(header, wrap_last_column(header, rows[:1], 12)).splitlines())


def test_a_backend_failing_the_same_way_on_several_models_is_one_line() -> None:
    from flopaudit.commands.run import problem_lines
    from flopaudit.records import CountResult, Status, Unit

    def failed(model: str, backend: str, status: Status, error: str) -> CountResult:
        return CountResult(model=model, backend=backend, backend_version="", torch_version="", unit=Unit.MAC,
                           status=status, error=error)

    missing = "the import package 'x' installed here is another distribution's\nmore detail"
    problems = [failed(f"m{i}", "summary", Status.NOT_APPLICABLE, missing) for i in range(5)]
    problems.insert(2, failed("m1", "stat", Status.ERROR, "AssertionError: counting module 'fc'"))
    problems.append(failed("m4", "stat", Status.ERROR, "AssertionError: counting module 'head'"))
    assert problem_lines(problems) == [
        "summary: not applicable on 5 models (m0, m1, m2 and 2 more): the import package 'x' installed here is "
        "another distribution's",
        "m1 / stat: error: AssertionError: counting module 'fc'",
        "m4 / stat: error: AssertionError: counting module 'head'",
    ]
    # a model that failed itself is one line for all its counts; a backend's own failure on it stays its own
    built = "model failed to build: RuntimeError: no weights\nTraceback"
    problems = [failed("m9", b, Status.ERROR, built) for b in ("reference", "thop", "stat")]
    problems.append(failed("m9", "summary", Status.NOT_APPLICABLE, missing))
    assert problem_lines(problems, {"m9": built}) == [
        "m9 / every backend: error: model failed to build: RuntimeError: no weights",
        "m9 / summary: not applicable: the import package 'x' installed here is another distribution's",
    ]


def test_backends_says_which_count_on_the_meta_device(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from flopaudit.adapters import backends

    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["backends"]) == 0
    lines = capsys.readouterr().out.splitlines()
    spans, start = [], 0  # the columns, from the rule under the header
    for dashes in lines[1].split("  "):
        spans.append((start, start + len(dashes)))
        start += len(dashes) + 2
    cells = [[line[a:b].strip() for a, b in spans] for line in [lines[0], *lines[2:]] if line.strip()]
    column = cells[0].index("meta")
    meta = {row[0]: row[column] for row in cells[1:]}
    assert meta == {name: "yes" if b.meta.allowed else "no" for name, b in backends().items()}
    assert meta["fvcore"] == "yes" and meta["deepspeed"] == "no"


def test_audit_of_a_model_built_on_meta_counts_it_in_its_traced_branch() -> None:
    """flopaudit.audit() of a transformers model built on meta that reads values outside its traced branch:
    counted there, with the note, as --meta counts it; its MACs are those of the same model on the CPU."""
    pytest.importorskip("transformers")
    import torch
    from user_models import gpt2_ids, gpt2_tiny

    from flopaudit.run import audit_model

    ids = gpt2_ids()
    with torch.device("meta"):
        on_meta = gpt2_tiny()
    meta = audit_model(on_meta, {k: v.to("meta") for k, v in ids.items()}, backends=["reference"], isolate=False)
    cpu = audit_model(gpt2_tiny(), ids, backends=["reference"], isolate=False)
    (m,), (c,) = meta.results, cpu.results
    assert m.status.value == "ok" and m.macs == c.macs and m.params == c.params
    assert any(w.startswith("on meta the model's code asks whether it is traced") for w in m.warnings), m.warnings
