"""The result cache: hits skip the work, any change to what a count depends on misses,
and a run with the cache gives the same answer as a run without it."""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_backends import FAKES, NoisyMutatingAdapter, registered

from flopaudit.adapters.base import Adapter
from flopaudit.cache import ResultCache, default_cache_dir, package_digest
from flopaudit.cli import main
from flopaudit.execution import CaseRef
from flopaudit.records import AuditRun, Status
from flopaudit.run import run_audit
from flopaudit.zoo import get_case
from flopaudit.zoo.case import ModelCase


@pytest.fixture()
def fake_backends() -> Iterator[None]:
    with registered(FAKES):
        yield


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the backends that really counted (counts run in this process)."""
    calls: list[str] = []
    original = Adapter.count

    def count(self: Adapter, *args: object, **kwargs: object) -> object:
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Adapter, "count", count)
    return calls


def audit(cache: ResultCache | None, backends: list[str], models: tuple[str, ...] = ("linear-3d",)) -> AuditRun:
    return run_audit([CaseRef(m) for m in models], backends, isolate=False, jobs=1, cache=cache)


def counts(run: AuditRun) -> list[dict[str, object]]:
    """A run's results without what legitimately differs between two runs (time taken)."""
    return [{**r.to_dict(), "elapsed_s": None} for r in run.results]


def test_second_run_builds_and_counts_nothing(tmp_path: Path, fake_backends: None, spy: list[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    first = audit(ResultCache(tmp_path), ["reference", "fake-noisy"])
    assert spy == ["reference", "fake-noisy"]

    def no_build(self: ModelCase) -> None:
        raise AssertionError(f"{self.id} was built")

    monkeypatch.setattr(ModelCase, "instantiate", no_build)
    cache = ResultCache(tmp_path)
    second = audit(cache, ["reference", "fake-noisy"])
    assert spy == ["reference", "fake-noisy"]  # no adapter ran again
    assert second.results == first.results and second.cases == first.cases
    assert (cache.hits, cache.misses) == (2, 0)


def test_changed_backend_version_misses(tmp_path: Path, fake_backends: None, spy: list[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    audit(ResultCache(tmp_path), ["reference", "fake-noisy"])
    monkeypatch.setattr(NoisyMutatingAdapter, "version", lambda self: "99.0")
    run = audit(ResultCache(tmp_path), ["reference", "fake-noisy"])
    assert spy == ["reference", "fake-noisy", "fake-noisy"]
    assert run.result("linear-3d", "fake-noisy").backend_version == "99.0"


def test_changed_adapter_options_miss(tmp_path: Path, fake_backends: None, spy: list[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    audit(ResultCache(tmp_path), ["fake-noisy"])
    monkeypatch.setattr(NoisyMutatingAdapter, "options", lambda self: {"mode": "other"})
    audit(ResultCache(tmp_path), ["fake-noisy"])
    assert spy == ["fake-noisy", "fake-noisy"]


def test_changed_flopaudit_source_misses(tmp_path: Path, fake_backends: None, spy: list[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    audit(ResultCache(tmp_path), ["fake-noisy"])
    monkeypatch.setattr("flopaudit.cache.package_digest", lambda: "an edited zoo")
    audit(ResultCache(tmp_path), ["fake-noisy"])
    assert spy == ["fake-noisy", "fake-noisy"]


def test_changed_distribution_version_misses(tmp_path: Path, fake_backends: None, spy: list[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A library the count loaded (torch here) at another version: the manifest no longer holds."""
    audit(ResultCache(tmp_path), ["fake-noisy"])
    from flopaudit.execution import manifest

    real = manifest.installed_version
    monkeypatch.setattr(manifest, "installed_version", lambda d: "0.0-upgraded" if d == "torch" else real(d))
    audit(ResultCache(tmp_path), ["fake-noisy"])
    assert spy == ["fake-noisy", "fake-noisy"]


def test_errors_are_counted_again(tmp_path: Path, fake_backends: None, spy: list[str]) -> None:
    audit(ResultCache(tmp_path), ["fake-raise", "fake-noisy"])
    run = audit(ResultCache(tmp_path), ["fake-raise", "fake-noisy"])
    assert spy == ["fake-raise", "fake-noisy", "fake-raise"]
    assert run.result("linear-3d", "fake-raise").status is Status.ERROR


def test_corrupt_file_is_ignored_and_rewritten(tmp_path: Path, fake_backends: None, spy: list[str]) -> None:
    audit(ResultCache(tmp_path), ["fake-noisy"])
    (result_file,) = tmp_path.glob("result-*.json")
    result_file.write_text("{ not json")
    run = audit(ResultCache(tmp_path), ["fake-noisy"])
    assert spy == ["fake-noisy", "fake-noisy"]
    assert run.result("linear-3d", "fake-noisy").macs == 7
    assert json.loads(result_file.read_text())["entries"][0]["value"]["macs"] == 7


def test_an_entry_with_a_malformed_manifest_is_ignored(tmp_path: Path, fake_backends: None, spy: list[str]) -> None:
    audit(ResultCache(tmp_path), ["fake-noisy"])
    (result_file,) = tmp_path.glob("result-*.json")
    doc = json.loads(result_file.read_text())
    doc["entries"][0]["manifest"]["searched"] = {"/somewhere": {}}  # (no "names")
    result_file.write_text(json.dumps(doc))
    run = audit(ResultCache(tmp_path), ["fake-noisy"])
    assert spy == ["fake-noisy", "fake-noisy"]
    assert run.result("linear-3d", "fake-noisy").macs == 7


def test_file_of_another_key_is_not_trusted(tmp_path: Path, fake_backends: None, spy: list[str]) -> None:
    audit(ResultCache(tmp_path), ["fake-noisy"])
    (result_file,) = tmp_path.glob("result-*.json")
    doc = json.loads(result_file.read_text())
    doc["key"]["case"]["id"] = "someone-else"
    result_file.write_text(json.dumps(doc))
    audit(ResultCache(tmp_path), ["fake-noisy"])
    assert spy == ["fake-noisy", "fake-noisy"]


def test_unnamed_cases_are_not_cached(tmp_path: Path, fake_backends: None, spy: list[str]) -> None:
    case = ModelCase("local", get_case("linear-3d").build, get_case("linear-3d").make_inputs)
    for _ in range(2):
        run_audit([case], ["fake-noisy"], isolate=False, cache=ResultCache(tmp_path))
    assert spy == ["fake-noisy", "fake-noisy"] and not list(tmp_path.iterdir())


def test_inputs_device_and_mode_are_part_of_the_key(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    keys = [cache.case_key("linear-3d", input_shape=shape, meta=meta, mode=mode)
            for shape, meta, mode in [(None, False, None), ((4, 16), False, None), (None, True, None),
                                      (None, False, "train")]]
    assert len({json.dumps(k, sort_keys=True) for k in keys}) == 4
    assert len(package_digest()) == 64


def test_environment_switches_are_part_of_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIMM_FUSED_ATTN", raising=False)
    monkeypatch.delenv("MY_WIDTH", raising=False)
    plain = ResultCache(tmp_path).case_key("linear-3d")
    monkeypatch.setenv("TIMM_FUSED_ATTN", "0")
    assert ResultCache(tmp_path).case_key("linear-3d") != plain
    monkeypatch.setenv("MY_WIDTH", "8")
    assert ResultCache(tmp_path, ("MY_WIDTH",)).case_key("linear-3d") != ResultCache(tmp_path).case_key("linear-3d")


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "flopaudit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "flopaudit"


def _cli(tmp_path: Path, *extra: str) -> int:
    return main(["run", "--models", "linear-3d", "--backends", "fake-noisy", "--no-isolation", "--no-progress",
                 "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *extra])


def test_cli_writes_then_reuses_the_cache(tmp_path: Path, fake_backends: None,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(tmp_path) == 0
    assert "cache: 0 results reused, 1 counted" in capsys.readouterr().out
    assert _cli(tmp_path) == 0
    assert "cache: 1 results reused, 0 counted" in capsys.readouterr().out


def test_cli_no_cache_neither_reads_nor_writes(tmp_path: Path, fake_backends: None, spy: list[str]) -> None:
    assert _cli(tmp_path) == 0
    written = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()}
    assert sorted(p.name.split("-")[0] for p in written) == ["case", "result"]
    assert _cli(tmp_path, "--no-cache") == 0
    assert spy == ["fake-noisy", "fake-noisy"]  # not read
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").iterdir()} == written  # not written


def test_fully_cached_run_starts_no_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = ("linear-3d", "conv2d-bias")
    first = run_audit([CaseRef(m) for m in models], ["reference"], jobs=1, cache=ResultCache(tmp_path))

    def no_worker(self: object) -> None:
        raise AssertionError("a worker was started")

    monkeypatch.setattr("flopaudit.execution.supervisor.Supervisor._start", no_worker)
    again = run_audit([CaseRef(m) for m in models], ["reference"], jobs=2, cache=ResultCache(tmp_path))
    assert again.results == first.results


# -- adversarial changes, with supervised workers -------------------------------------------


def _write_user_models(root: Path, width: int) -> None:
    """A model module that takes its width from a helper module it imports (as user code does)."""
    (root / "cache_helper_widths.py").write_text(f"WIDTH = {width}\n")
    (root / "cache_user_models.py").write_text(textwrap.dedent("""\
        import os

        import torch
        from torch import nn

        from cache_helper_widths import WIDTH


        def build():
            extra = int(os.environ.get("TIMM_TEST_EXTRA", "0")) + int(os.environ.get("MY_MODEL_EXTRA", "0"))
            return nn.Linear(4, WIDTH + extra, bias=False)
        """))


def _macs_and_hits(spec: str, cache_dir: Path) -> tuple[int | None, int]:
    """Count ``spec`` (on a 3x4 input) with the reference through the cache in ``cache_dir``: its MACs,
    and how many results the cache gave."""
    cache = ResultCache(cache_dir)
    run = run_audit([CaseRef(spec, (3, 4))], ["reference"], jobs=1, cache=cache)
    return run.results[0].macs, cache.hits


def _audit_user_model(root: Path, cache: ResultCache | None) -> AuditRun:
    return run_audit([CaseRef("cache_user_models:build", (3, 4))], ["reference"], jobs=1, cache=cache)


@pytest.fixture()
def user_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    _write_user_models(root, width=2)
    monkeypatch.syspath_prepend(str(root))
    for name in ("TIMM_TEST_EXTRA", "MY_MODEL_EXTRA"):
        monkeypatch.delenv(name, raising=False)
    return root


def test_editing_an_imported_helper_module_recounts(tmp_path: Path, user_models: Path) -> None:
    cache_dir = tmp_path / "cache"
    first = _audit_user_model(user_models, ResultCache(cache_dir))
    assert first.results[0].macs == 3 * 4 * 2
    again = ResultCache(cache_dir)
    _audit_user_model(user_models, again)
    assert (again.hits, again.misses) == (1, 0)  # nothing changed: served from the cache
    _write_user_models(user_models, width=5)  # only the helper's WIDTH changes
    edited = ResultCache(cache_dir)
    run = _audit_user_model(user_models, edited)
    assert (edited.hits, edited.misses) == (0, 1)
    assert run.results[0].macs == 3 * 4 * 5


def test_an_environment_switch_recounts(tmp_path: Path, user_models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_dir = tmp_path / "cache"
    assert _audit_user_model(user_models, ResultCache(cache_dir)).results[0].macs == 3 * 4 * 2
    monkeypatch.setenv("TIMM_TEST_EXTRA", "1")  # a TIMM_ variable: always part of the key
    assert _audit_user_model(user_models, ResultCache(cache_dir)).results[0].macs == 3 * 4 * 3
    monkeypatch.setenv("MY_MODEL_EXTRA", "2")  # any other variable: named with --cache-env
    named = ResultCache(cache_dir, ("MY_MODEL_EXTRA",))
    assert _audit_user_model(user_models, named).results[0].macs == 3 * 4 * 5
    assert (named.hits, named.misses) == (0, 1)


def test_cached_and_uncached_runs_agree_on_the_hard_cases(tmp_path: Path) -> None:
    """A cache must never change an answer: the same counts with the cache off, filling it and reading it."""
    refs = [CaseRef(c.id) for c in _hard_subset()]
    backends = ["reference", "thop", "fvcore"]
    off = run_audit(refs, backends, jobs=2)
    filled = run_audit(refs, backends, jobs=2, cache=ResultCache(tmp_path))
    cache = ResultCache(tmp_path)
    read = run_audit(refs, backends, jobs=2, cache=cache)
    assert cache.misses == 0
    assert counts(off) == counts(filled) == counts(read)
    assert [dataclasses.replace(c, forward_s=None, output="") for c in off.cases] == [
        dataclasses.replace(c, forward_s=None, output="") for c in read.cases]


def _hard_subset() -> list[ModelCase]:
    from flopaudit.zoo import all_cases

    return [c for c in all_cases() if "hard" in c.tags][:12]


@pytest.mark.slow
def test_cached_and_uncached_runs_agree_on_the_default_zoo(tmp_path: Path) -> None:
    from flopaudit.zoo.catalog import select

    refs = [CaseRef(i) for i in select().ids]
    off = run_audit(refs, None, jobs=2)
    run_audit(refs, None, jobs=2, cache=ResultCache(tmp_path))
    cache = ResultCache(tmp_path)
    read = run_audit(refs, None, jobs=2, cache=cache)
    assert cache.misses == sum(not r.ok and r.status is not Status.NOT_APPLICABLE for r in off.results)
    assert counts(off) == counts(read)


def test_the_same_module_name_in_two_projects_is_two_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``net:build`` run from two project directories names two files: the second run must not
    be served the first one's count (the key holds where the spec's code lives)."""
    for name, width in (("one", 2), ("two", 7)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cache_same_name_net.py").write_text(
            f"from torch import nn\n\ndef build():\n    return nn.Linear(4, {width}, bias=False)\n")
    cache_dir = tmp_path / "cache"
    got = []
    for name in ("one", "two", "one"):
        monkeypatch.chdir(tmp_path / name)
        cache = ResultCache(cache_dir)
        got.append((run_audit([CaseRef("cache_same_name_net:build", (3, 4))], ["reference"], jobs=1,
                              cache=cache).results[0].macs, cache.hits))
    assert got == [(3 * 4 * 2, 0), (3 * 4 * 7, 0), (3 * 4 * 2, 1)]


def test_editing_a_file_the_model_reads_recounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config read with ``open`` (not imported) is part of what a cached count depends on;
    a file the model writes itself first (scratch) is not, so its count stays cached."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "cache_config_net.py").write_text(textwrap.dedent("""\
        import json, os, tempfile
        from torch import nn

        def build():
            here = os.path.dirname(__file__)
            with open(os.path.join(here, "width.json")) as f:
                width = json.load(f)["width"]
            scratch = os.path.join(tempfile.mkdtemp(), "scratch.txt")  # a new file every build
            with open(scratch, "w") as f:
                f.write("x")
            with open(scratch) as f:
                f.read()
            return nn.Linear(4, width, bias=False)
        """))
    monkeypatch.syspath_prepend(str(root))
    cache_dir = tmp_path / "cache"

    def macs_and_hits(width: int | None) -> tuple[int | None, int]:
        if width is not None:
            (root / "width.json").write_text(json.dumps({"width": width}))
        return _macs_and_hits("cache_config_net:build", cache_dir)

    assert macs_and_hits(2) == (3 * 4 * 2, 0)
    assert macs_and_hits(None) == (3 * 4 * 2, 1)  # nothing changed (the scratch file is new, and not asked)
    assert macs_and_hits(5) == (3 * 4 * 5, 0)  # only the JSON changed


def test_a_large_file_is_known_by_size_and_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flopaudit.execution import manifest

    monkeypatch.setattr(manifest, "HASHED_UP_TO", 4)
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(b"1234")
    large.write_bytes(b"12345")
    assert len(manifest.file_digest(small)) == 64
    before = manifest.file_digest(large)
    assert before.startswith("stat:5:")
    os.utime(large, ns=(1, 1))
    assert manifest.file_digest(large) != before


_READERS = {
    # how a factory reads its width: each must make the cache recount when the file changes
    "np.loadtxt": "import numpy as np\n    width = int(np.loadtxt(os.path.join(here, 'width.txt')))",
    "runpy": "import runpy\n    width = runpy.run_path(os.path.join(here, 'width_module.py'))['WIDTH']",
    "r+ mode": "with open(os.path.join(here, 'width.txt'), 'r+') as f:\n        width = int(f.read())",
    "cwd-relative": "with open('width.txt') as f:\n        width = int(f.read())",
}


@pytest.mark.parametrize("reader", sorted(_READERS))
def test_a_width_read_any_way_recounts_when_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      reader: str) -> None:
    """numpy's loadtxt (numpy keeps the ``open`` it saw at import), a helper run with runpy (read through
    ``io.open_code``), a file opened "r+" and a path relative to the working directory: a cached count
    is reused only while what the model read is unchanged, and a run from another directory, where a
    relative path names another file, counts again."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "cache_reader_net.py").write_text(
        "import os\nfrom torch import nn\n\n\ndef build():\n    here = os.path.dirname(__file__)\n    "
        + _READERS[reader] + "\n    return nn.Linear(4, width, bias=False)\n")
    monkeypatch.syspath_prepend(str(root))
    cache_dir = tmp_path / "cache"

    def macs_and_hits(width: int | None, where: Path = root) -> tuple[int | None, int]:
        if width is not None:
            (where / "width.txt").write_text(str(width))
            (where / "width_module.py").write_text(f"WIDTH = {width}\n")
            time.sleep(0.05)  # (a file changed as an order begins is taken as changed while it ran: no reuse)
        monkeypatch.chdir(where)
        return _macs_and_hits("cache_reader_net:build", cache_dir)

    assert macs_and_hits(2) == (3 * 4 * 2, 0)
    assert macs_and_hits(None) == (3 * 4 * 2, 1)
    assert macs_and_hits(5) == (3 * 4 * 5, 0)
    if reader == "cwd-relative":
        other = tmp_path / "other"
        other.mkdir()
        assert macs_and_hits(7, other) == (3 * 4 * 7, 0)  # the same model run from elsewhere


def test_a_file_changed_while_the_run_read_it_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user saves an edit to a helper while a run builds the model from it: the run counted the old
    width, and its result is stored under the file as it is after the edit. That file changed after the
    order began, so the result is not reused: the next run counts the new width."""
    root = tmp_path / "src"
    root.mkdir()
    (root / "race_width.py").write_text("WIDTH = 2\n")
    (root / "race_net.py").write_text(textwrap.dedent("""\
        from torch import nn

        def build():
            import race_width
            width = race_width.WIDTH
            with open(race_width.__file__, "w") as f:  # the user's edit, saved while this run builds
                f.write("WIDTH = 5\\n")
            return nn.Linear(4, width, bias=False)
        """))
    monkeypatch.syspath_prepend(str(root))
    cache_dir = tmp_path / "cache"

    assert _macs_and_hits("race_net:build", cache_dir) == (3 * 4 * 2, 0)
    assert _macs_and_hits("race_net:build", cache_dir) == (3 * 4 * 5, 0)  # not the stored 3 x 4 x 2


def test_a_factory_drawing_from_pythons_random_builds_the_same_model_every_time() -> None:
    """Workers are forked, and Python reseeds ``random`` in every fork: a factory drawing a width from
    it built different models for two counts of one run. Python's and numpy's generators are seeded
    with torch's before the factory runs."""
    import random

    import numpy as np
    from torch import nn

    from flopaudit.zoo.case import ModelCase, tensor_inputs

    case = ModelCase("drawn", lambda: nn.Linear(4, random.randint(1, 1000) + int(np.random.randint(0, 1000))),
                     tensor_inputs(2, 4))
    widths = set()
    for state in (1, 2, 3):
        random.seed(state)
        np.random.seed(state)
        widths.add(case.instantiate()[0].out_features)
    assert len(widths) == 1, widths


_LOOKUPS = {
    # how a model asks for a module it can do without: each must recount once the module is there
    "optional import": "try:\n        import {mod}\n        width = {mod}.WIDTH\n    except ImportError:\n"
                       "        width = 2",
    "find_spec": "import importlib.util\n    width = 5 if importlib.util.find_spec('{mod}') is not None else 2",
    "shadowed helper": "import {mod}\n    width = {mod}.WIDTH",
}


@pytest.mark.parametrize("lookup", sorted(_LOOKUPS))
def test_a_module_that_appears_on_the_path_recounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    lookup: str) -> None:
    """A model whose width depends on what an import finds: an optional dependency installed since
    the last run (``try: import fused_ops`` or transformers' ``find_spec`` check), or a helper module
    of the model's that a new package of the same name, earlier on ``sys.path``, now shadows. None of
    these changes a file the last run imported or read, yet each changes the model."""
    mod = "cache_lookup_" + lookup.replace(" ", "_")
    src, site = tmp_path / "src", tmp_path / "site"  # site: an installed package's directory, first on sys.path
    src.mkdir()
    site.mkdir()
    (src / "cache_lookup_net.py").write_text(
        "from torch import nn\n\n\ndef build():\n    " + _LOOKUPS[lookup].format(mod=mod)
        + "\n    return nn.Linear(4, width, bias=False)\n")
    if lookup == "shadowed helper":
        (src / f"{mod}.py").write_text("WIDTH = 2\n")
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.syspath_prepend(str(site))
    cache_dir = tmp_path / "cache"

    assert _macs_and_hits("cache_lookup_net:build", cache_dir) == (3 * 4 * 2, 0)
    assert _macs_and_hits("cache_lookup_net:build", cache_dir) == (3 * 4 * 2, 1)
    (site / mod).mkdir()  # installed: a package of that name
    (site / mod / "__init__.py").write_text("WIDTH = 5\n")
    time.sleep(0.05)
    assert _macs_and_hits("cache_lookup_net:build", cache_dir) == (3 * 4 * 5, 0)
    assert _macs_and_hits("cache_lookup_net:build", cache_dir) == (3 * 4 * 5, 1)


def test_a_torchscript_file_the_factory_loads_recounts_when_it_changes(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``torch.jit.load(path)`` reads the file in C++, not through Python's ``open``: the architecture is
    in that file, so a cached count is reused only while it is unchanged."""
    import torch
    from torch import nn

    root = tmp_path / "src"
    root.mkdir()
    (root / "cache_scripted_net.py").write_text(
        "import os\nimport torch\n\n\ndef build():\n"
        "    return torch.jit.load(os.path.join(os.path.dirname(__file__), 'net.pt'))\n")
    monkeypatch.syspath_prepend(str(root))
    cache_dir = tmp_path / "cache"

    def macs_and_hits(width: int | None) -> tuple[int | None, int]:
        if width is not None:
            torch.jit.save(torch.jit.script(nn.Linear(4, width, bias=False)), str(root / "net.pt"))
            time.sleep(0.05)
        return _macs_and_hits("cache_scripted_net:build", cache_dir)

    assert macs_and_hits(2) == (3 * 4 * 2, 0)
    assert macs_and_hits(None) == (3 * 4 * 2, 1)
    assert macs_and_hits(5) == (3 * 4 * 5, 0)


def test_files_written_counts_each_file_once(tmp_path: Path) -> None:
    """A case counted by two workers stores its info under each one's manifest: one file, written twice,
    said once."""
    from flopaudit.execution.manifest import Manifest
    from flopaudit.records import CaseInfo

    cache = ResultCache(tmp_path)
    key = {"case": {"id": "x"}}
    for manifest in (Manifest(files=(("a", "1"),)), Manifest(files=(("b", "2"),))):
        cache.put_info(key, CaseInfo("x"), manifest)
    assert cache.writes == len(list(tmp_path.glob("*.json"))) == 1
    assert "1 files written" in cache.summary()
