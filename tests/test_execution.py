"""Supervised workers: every fault of a user's model is a cell's status, nothing reaches the CLI.

The faulty zoo (``flopaudit.zoo.faulty``, tag ``faulty``) hangs, hangs only
under module hooks, segfaults, exits, allocates 64 TiB, prints 100k lines
and has a factory that raises; each is run through the command line with
one and with two workers, next to a model that behaves.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flopaudit.cli import main
from flopaudit.zoo import faulty

BACKENDS = ["reference", "thop", "torchinfo"]
OK_MACS = 2 * 8 * 4  # every faulty model is a Linear(8, 4) on (2, 8) when it runs
HOOKED = {"thop", "torchinfo"}  # the backends here that put forward hooks on every module


def _statuses(out: Path) -> dict[tuple[str, str], dict[str, object]]:
    data = json.loads((out / "results.json").read_text())
    return {(r["model"], r["backend"]): r for r in data["results"]}


# (two workers in the slow tier, for the default tier's time: tests/test_parallel.py's
# test_failures_in_workers_become_statuses faults two workers' counts)
@pytest.mark.parametrize("jobs", ["1", pytest.param("2", marks=pytest.mark.slow)])
def test_faulty_models_become_statuses_and_the_rest_is_counted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str) -> None:
    out = tmp_path / "out"
    code = main(["run", "--models", "faulty-*", "linear-3d", "--backends", *BACKENDS,
                 "--timeout", "3", "--max-memory", "2", "--jobs", jobs, "--no-cache", "--no-progress",
                 "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0
    assert "model output line" not in printed.out + printed.err  # the flood stayed in the worker
    cells = _statuses(out)
    for b in BACKENDS:
        assert cells[("linear-3d", b)]["status"] == "ok"
        assert cells[("faulty-prints", b)]["status"] == "ok"
        hang = cells[("faulty-hang-forward", b)]
        assert hang["status"] == "timeout" and "building or running the model" in hang["error"]
        # where it hung: the worker's Python stack, dumped before it was stopped
        assert f"the worker was stopped in fault ({faulty.__file__}, line " in hang["error"], hang["error"]
        under_hooks = cells[("faulty-hang-under-hooks", b)]
        if b in HOOKED:
            assert under_hooks["status"] == "timeout" and "no result after 3 s" in under_hooks["error"]
            assert f"the count was stopped in fault ({faulty.__file__}, line " in under_hooks["error"]
        else:
            assert under_hooks["status"] == "ok"
        assert f"(signal SIGSEGV); its last output: Segmentation fault in fault ({faulty.__file__}, line " in \
            cells[("faulty-segfault", b)]["error"]
        for model, words in [("faulty-segfault", "signal SIGSEGV"), ("faulty-exit", "exit code 3"),
                             ("faulty-huge-allocation", "memory limit of 2 GiB"),
                             ("faulty-factory-raises", "model failed to build")]:
            assert cells[(model, b)]["status"] == "error", (model, b)
            assert words in cells[(model, b)]["error"], (model, b, cells[(model, b)]["error"])
    assert cells[("faulty-prints", "reference")]["macs"] == cells[("faulty-hang-under-hooks", "reference")]["macs"] == OK_MACS
    infos = {c["id"]: c for c in json.loads((out / "results.json").read_text())["cases"]}
    assert infos["faulty-prints"]["output"].startswith("model output line 0\n")
    assert "more line(s) not kept" in infos["faulty-prints"]["output"]


def test_a_factory_that_raises_is_a_user_mistake(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["run", "--models", "user_models:raising_factory", "--input-shape", "1,4", "--no-cache",
                 "--no-progress", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "'user_models:raising_factory'" in err[0] and "RuntimeError: no weights for you" in err[0]
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_factory_that_calls_sys_exit_is_a_user_mistake(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(["run", "--models", "user_models:exits_with_a_message", "--input-shape", "1,4", "--no-cache",
                 "--no-progress", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert err[0].endswith("'user_models:exits_with_a_message' or its inputs factory raised while building: "
                           "SystemExit: config error: no field 'width'"), err


def test_a_worker_that_dies_says_what_it_wrote_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that writes why to standard error and ends its process: each cell names the exit code
    and what it wrote, and the case keeps the output. The workers' output files go with the run."""
    import tempfile

    from flopaudit.execution import supervisor

    made: list[str] = []
    mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(supervisor.tempfile, "mkdtemp", lambda **kw: made.append(mkdtemp(**kw)) or made[-1])
    out = tmp_path / "out"
    assert main(["run", "--models", "user_models:says_then_exits", "--input-shape", "2,8", "--backends",
                 "reference", "thop", "--no-cache", "--no-progress", "--out", str(out)]) == 0
    cells = _statuses(out)
    for b in ("reference", "thop"):
        assert cells[("user_models:says_then_exits", b)]["error"] == (
            "the worker died while building or running the model (exit code 4); its last output: fatal: kernel "
            "not built for this machine")
    case = json.loads((out / "results.json").read_text())["cases"][0]
    assert case["output"] == "fatal: kernel not built for this machine"
    assert made and not any(os.path.exists(d) for d in made), made


def test_a_worker_does_not_walk_what_the_fork_server_imported(tmp_path: Path) -> None:
    """The fork server freezes the objects its imports left (``gc.freeze()``): a worker's first full
    collection walked them all, about 0.2 s paid by its first count (flopaudit.execution.server_ready)."""
    out = tmp_path / "out"
    assert main(["run", "--models", "user_models:says_how_many_objects_are_frozen", "--input-shape", "2,8",
                 "--backends", "reference", "--no-cache", "--no-progress", "--out", str(out)]) == 0
    output = json.loads((out / "results.json").read_text())["cases"][0]["output"]
    assert int(output.removeprefix("frozen objects: ")) > 100_000, output


def test_a_factory_with_the_wrong_arguments_is_a_user_mistake(capsys: pytest.CaptureFixture[str],
                                                              tmp_path: Path) -> None:
    code = main(["run", "--models", "user_models:needs_width", "--input-shape", "1,4", "--no-cache",
                 "--no-progress", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "TypeError" in err and "width" in err and "\n" not in err


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_ctrl_c_stops_everything_within_two_seconds(tmp_path: Path) -> None:
    out, cache, scratch = tmp_path / "out", tmp_path / "cache", tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flopaudit", "run", "--models", "faulty-hang-forward", "faulty-hang-under-hooks",
         "linear-3d", "--timeout", "120", "--jobs", "2", "--cache-dir", str(cache), "--no-progress",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(scratch)},
        # as a terminal's foreground command gets it: a test run started in the background (`pytest &`)
        # passes SIGINT on ignored, and a process that starts with it ignored rightly never sees Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    seen: set[int] = set()
    while time.monotonic() < deadline and len([p for p in seen if _alive(p)]) < 3:  # fork server + 2 workers
        seen |= _descendants(proc.pid)
        time.sleep(0.2)
    time.sleep(2)  # the workers are inside the hanging forward passes
    seen |= _descendants(proc.pid)
    assert len(seen) >= 3, seen
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the foreground process group
    start = time.monotonic()
    _, err = proc.communicate(timeout=30)
    elapsed = time.monotonic() - start
    assert proc.returncode == 130, err
    assert elapsed < 2.0, elapsed
    assert "interrupted" in err and "Traceback" not in err
    time.sleep(0.5)
    assert not [p for p in seen if _alive(p)]
    assert not (out / "results.json").exists() and not list(out.glob("*.tmp")) and not list(out.glob(".*"))
    assert not list(cache.glob(".*.tmp")) if cache.exists() else True
    assert not list(scratch.glob("flopaudit-workers-*")), list(scratch.iterdir())  # the workers' output files


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_everything_as_ctrl_c_does(tmp_path: Path) -> None:
    """``kill`` (SIGTERM), as a CI job's time limit sends it, reaches the command line process alone:
    it stops the workers and the fork server as Ctrl-C does, exits 143 and leaves no process and no
    partial file behind. Before, the workers and the fork server went on running."""
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flopaudit", "run", "--models", "faulty-hang-forward", "linear-3d", "--timeout",
         "120", "--jobs", "2", "--no-cache", "--no-progress", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TMPDIR": str(scratch)},
    )
    deadline = time.monotonic() + 120
    seen: set[int] = set()
    while time.monotonic() < deadline and len([p for p in seen if _alive(p)]) < 2:  # fork server + a worker
        seen |= _descendants(proc.pid)
        time.sleep(0.2)
    time.sleep(2)
    seen |= _descendants(proc.pid)
    assert len(seen) >= 2, seen
    proc.send_signal(signal.SIGTERM)  # to the command line process only, as kill PID does
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    time.sleep(0.5)
    assert not [p for p in seen if _alive(p)]
    assert not (out / "results.json").exists() and not list(scratch.glob("flopaudit-workers-*"))


def test_the_command_line_process_never_imports_torch_or_runs_the_model(tmp_path: Path) -> None:
    code = ("import sys\nfrom flopaudit.cli import main\n"
            f"code = main(['run', '--models', 'user_models:tiny_linear', '--input-shape', '3,4', "
            f"'--backends', 'reference', 'thop', '--no-cache', '--no-progress', '--out', {str(tmp_path)!r}])\n"
            "assert code == 0, code\n"
            "assert 'torch' not in sys.modules and 'user_models' not in sys.modules, 'imported here'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    cells = _statuses(tmp_path)
    assert cells[("user_models:tiny_linear", "reference")]["macs"] == 3 * 4 * 2


def test_files_named_like_modules_in_the_working_directory_do_not_stop_the_workers(tmp_path: Path) -> None:
    """A project holding ``profile.py`` (ptflops imports the standard one through ``cProfile``),
    ``signal.py`` and ``random.py`` beside its model: the fork server started as ``python -c``
    once looked in the working directory first, imported them and died ("EOFError" and a
    traceback from the command line). The model's own imports still find its files."""
    (tmp_path / "model.py").write_text("import torch.nn as nn\nfrom helpers import width\n\n\n"
                                       "def build():\n    return nn.Linear(8, width(), bias=False)\n")
    (tmp_path / "helpers.py").write_text("def width():\n    return 4\n")
    for name in ("profile", "signal", "random"):
        (tmp_path / f"{name}.py").write_text(f"raise RuntimeError('the project file {name}.py was imported')\n")
    script = Path(sys.executable).with_name("flopaudit")  # (python -m would look in the directory first itself)
    if not script.is_file():
        pytest.skip("the flopaudit command is not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    proc = subprocess.run([str(script), "run", "--models", "model:build", "--input-shape", "2,8",
                           "--backends", "reference", "ptflops-pytorch", "--no-cache", "--no-progress", "--out", "out"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    cells = _statuses(tmp_path / "out")
    assert cells[("model:build", "reference")]["macs"] == OK_MACS
    assert cells[("model:build", "ptflops-pytorch")]["status"] == "ok"


def _with_preload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, source: str) -> None:
    """The fork server of this process made afresh, asked to import module ``name`` too."""
    import flopaudit.run as run_module
    from flopaudit.execution.supervisor import stop_fork_server

    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # (found by the server whether or not it takes this path)
    real = run_module.preload_modules
    monkeypatch.setattr(run_module, "preload_modules", lambda *a, **k: [*real(*a, **k), name])
    stop_fork_server()


def test_a_module_the_fork_server_cannot_import_fails_only_where_it_is_needed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A backend package raising something else than ImportError on import (a broken install)
    killed the fork server, and with it the run; it is now left to the worker that needs it."""
    import flopaudit
    from flopaudit.execution.supervisor import stop_fork_server

    _with_preload(monkeypatch, tmp_path, "raises_on_import", "raise RuntimeError('broken install')\n")
    try:
        frame = flopaudit.audit_zoo(["linear-3d"], backends=["reference"])
    finally:
        stop_fork_server()
    assert list(frame["status"]) == ["ok"] and int(frame["macs"].iloc[0]) > 0


def test_a_fork_server_that_dies_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from flopaudit.execution.supervisor import stop_fork_server

    _with_preload(monkeypatch, tmp_path, "exits_on_import", "import os\nos._exit(3)\n")
    try:
        code = main(["run", "--models", "linear-3d", "--backends", "reference", "--no-cache", "--no-progress",
                     "--out", str(tmp_path / "out")])
    finally:
        stop_fork_server()
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "the worker processes could not start" in err and "--no-isolation" in err


def test_workers_exit_so_their_process_locks_are_not_reported_leaked(tmp_path: Path) -> None:
    """Two models whose factories keep a multiprocessing lock (tqdm does): each worker is asked to exit
    before it is stopped, so Python's resource tracker finds no semaphore leaked at the end of the run."""
    tests = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "flopaudit", "run", "--models", "user_models:holds_a_process_lock", "linear-3d",
         "--input-shape", "2,8", "--backends", "reference", "--no-cache", "--no-progress", "--jobs", "1",
         "--out", str(tmp_path / "out")],
        cwd=tests, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])},
    )
    assert done.returncode == 0, done.stderr
    assert "leaked semaphore" not in done.stderr, done.stderr


def test_a_killed_workers_process_locks_are_not_reported_leaked(tmp_path: Path) -> None:
    """A worker that hangs is killed, and cannot let go of a lock its model made (tqdm's): Python's
    resource tracker removes the lock's semaphore, and does so without a warning in the run's output."""
    tests = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-m", "flopaudit", "run", "--models", "user_models:holds_a_process_lock_and_hangs",
         "--input-shape", "2,8", "--backends", "reference", "--no-cache", "--no-progress", "--jobs", "1",
         "--timeout", "3", "--out", str(tmp_path / "out")],
        cwd=tests, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])},
    )
    assert "timeout" in done.stdout + done.stderr, done.stdout + done.stderr
    assert "leaked semaphore" not in done.stderr, done.stderr
