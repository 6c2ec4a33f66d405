"""The result cache: hits skip the work, any change to what a count depends on misses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_backends import FAKES, NoisyMutatingAdapter, registered

from flopaudit.adapters.base import Adapter
from flopaudit.cache import ResultCache, default_cache_dir, module_digest, package_digest
from flopaudit.cli import main
from flopaudit.execution import CaseRef
from flopaudit.records import Status
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


def audit(cache: ResultCache | None, backends: list[str], models: tuple[str, ...] = ("linear-3d",)):
    return run_audit([CaseRef(m) for m in models], backends, isolate=False, jobs=1, cache=cache)


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
    assert json.loads(result_file.read_text())["value"]["macs"] == 7


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


def test_input_override_is_part_of_the_key(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    case = get_case("linear-3d")
    keys = [cache.case_key(case, CaseRef("linear-3d", shape), meta=meta)
            for shape, meta in [(None, False), ((4, 16), False), (None, True)]]
    assert len({json.dumps(k, sort_keys=True) for k in keys}) == 3


def test_user_module_edit_changes_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "edited_models.py"
    module.write_text("from torch import nn\ndef build():\n    return nn.Linear(4, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = module_digest("edited_models")
    module.write_text("from torch import nn\ndef build():\n    return nn.Linear(4, 3)\n")
    assert module_digest("edited_models") != before != ""
    assert module_digest("flopaudit.zoo.hard_cases") == ""  # covered by the package digest
    assert len(package_digest()) == 64


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


def test_fully_cached_parallel_run_starts_no_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    models = ("linear-3d", "conv2d-bias")
    first = audit(ResultCache(tmp_path), ["reference"], models)

    def no_pool(jobs: int) -> None:
        raise AssertionError("a worker pool was started")

    monkeypatch.setattr("flopaudit.execution.pool.process_executor", no_pool)
    again = run_audit([CaseRef(m) for m in models], ["reference"], jobs=2, cache=ResultCache(tmp_path))
    assert again.results == first.results
