"""User code named as ``module:function`` or ``path/to/file.py:function`` (flopaudit.callables)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from flopaudit.callables import check_spec, file_module, load_callable, origin, split_spec
from flopaudit.errors import UserError


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory as users have them: a package of models with a relative import, and a script."""
    pkg = tmp_path / "fa_probe_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "blocks.py").write_text("WIDTH = 5\n")
    (pkg / "net.py").write_text("from .blocks import WIDTH\n\ndef build():\n    return WIDTH\n")
    (tmp_path / "fa_probe_script.py").write_text("class Net:\n    @staticmethod\n    def small():\n        return 'small'\n")
    (tmp_path / "fa_probe_side_effect.py").write_text("raise SystemExit('ran')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for name in [m for m in sys.modules if m.startswith("fa_probe")]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def test_a_file_in_a_package_is_imported_as_its_package_module(project: Path) -> None:
    assert file_module("fa_probe_models/net.py") == (str(project), "fa_probe_models.net")
    assert load_callable("fa_probe_models/net.py:build")() == 5  # its relative import works
    assert load_callable(f"{project}/fa_probe_script.py:Net.small")() == "small"


def test_a_file_that_another_module_of_its_name_hides_is_an_error(project: Path) -> None:
    (project / "json.py").write_text("def dumps(x):\n    return 'mine'\n")
    with pytest.raises(UserError, match="not the file"):
        load_callable("json.py:dumps")


def test_specs_are_read_without_running_anything(project: Path) -> None:
    assert split_spec("fa_probe_models/net.py:build") == ("fa_probe_models/net.py", "build")
    check_spec("fa_probe_side_effect.py:build")  # exists: fine, and not imported
    assert origin("fa_probe_side_effect.py:build") == str(project / "fa_probe_side_effect.py")
    assert origin("fa_probe_side_effect:build") == str(project / "fa_probe_side_effect.py")  # the working directory
    assert origin("fa_probe_models.net:build") == str(project / "fa_probe_models" / "__init__.py")
    assert "fa_probe_side_effect" not in sys.modules and "fa_probe_models" not in sys.modules
    assert str(project) not in sys.path
    assert origin("json:dumps") == os.path.realpath(sys.modules["json"].__file__)  # installed first
    with pytest.raises(UserError, match="no file"):
        check_spec("fa_probe_models/missing.py:build")
    for bad in ("net", "net:", ":build", "my-net:build", "a b:build", "net:build(x)"):
        with pytest.raises(UserError, match="cannot read"):
            check_spec(bad)


def test_a_file_whose_name_is_not_a_module_name_is_loaded_under_it(project: Path) -> None:
    """Scripts are named ``train-cifar.py`` or ``my net.py``, which ``import`` cannot name: such a file is
    loaded under its own name, its directory first on ``sys.path`` (its helpers import), or as a module
    of the package it is in (its relative imports work)."""
    (project / "fa_probe_helper.py").write_text("WIDTH = 7\n")
    (project / "fa-probe train.py").write_text("from fa_probe_helper import WIDTH\n\ndef build():\n"
                                               "    return WIDTH, __name__\n")
    (project / "fa_probe_models" / "res-net.py").write_text("from .blocks import WIDTH\n\ndef build():\n"
                                                            "    return WIDTH, __name__\n")
    check_spec("fa-probe train.py:build")
    assert split_spec("fa-probe train.py:build") == ("fa-probe train.py", "build")
    assert load_callable("fa-probe train.py:build")() == (7, "fa-probe train")
    assert load_callable(f"{project}/fa-probe train.py:build")() == (7, "fa-probe train")  # loaded once
    assert load_callable("fa_probe_models/res-net.py:build")() == (5, "fa_probe_models.res-net")
    (project / "fa-probe broken.py").write_text("raise ValueError('no')\n")
    with pytest.raises(UserError, match="ValueError: no"):
        load_callable("fa-probe broken.py:build")
    assert "fa-probe broken" not in sys.modules
    with pytest.raises(UserError, match="no file"):
        check_spec("fa-probe missing.py:build")
    for name in [m for m in sys.modules if m.startswith(("fa-probe", "fa_probe_models.res-net"))]:
        del sys.modules[name]


def test_the_command_line_takes_files_for_the_model_and_the_loss(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from flopaudit.cli import main

    (project / "fa_probe_models" / "layers.py").write_text(
        "from torch import nn\n\ndef build():\n    return nn.Linear(4, 3)\n")
    (project / "fa_probe_loss.py").write_text("def loss(out):\n    return out.square().sum()\n")
    common = ["run", "--input-shape", "2,4", "-b", "reference", "--no-cache", "--no-progress"]
    assert main([*common, "-m", "fa_probe_models/layers.py:build", "--pass", "train", "--loss",
                 "fa_probe_loss.py:loss", "--out", "out"]) == 0
    (result,) = json.loads((project / "out" / "results.json").read_text())["results"]
    # forward 2x4x3 MACs, and the weight gradient as many (no input gradient: the inputs need none)
    assert result["model"] == "fa_probe_models/layers.py:build" and result["macs"] == 2 * (2 * 4 * 3)
    capsys.readouterr()
    for argv, expected in (([*common, "-m", "fa_probe_models/missing.py:build"], "no file 'fa_probe_models/missing.py'"),
                           ([*common, "-m", "fa_probe_models/layers.py:build", "--pass", "train", "--loss",
                             "missing_loss.py:loss"], "cannot read loss 'missing_loss.py:loss': no file")):
        assert main([*argv, "--out", "bad"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err, err


def test_a_spec_may_call_its_function_with_literal_arguments(project: Path) -> None:
    from flopaudit.callables import call_arguments
    from flopaudit.commands._common import split_list

    (project / "fa_probe_args.py").write_text("def build(width, depth=1, *, names=()):\n"
                                             "    return width, depth, names\n")
    assert load_callable("fa_probe_args:build(8, depth=2, names=('a', 'b'))")() == (8, 2, ("a", "b"))
    assert load_callable("fa_probe_args.py:build(3)")() == (3, 1, ())
    assert load_callable("fa_probe_args:build(names={'x:y': [1, 2]})")(5) == (5, 1, {"x:y": [1, 2]})  # then the caller's
    assert call_arguments("fa_probe_args:build") is None
    assert split_spec("fa_probe_args:build(names={'x:y': 1})") == ("fa_probe_args", "build")
    assert origin("fa_probe_args:build(1)") == str(project / "fa_probe_args.py")
    for bad in ("fa_probe_args:build(width)", "fa_probe_args:build(len('x'))", "fa_probe_args:build(**{'a': 1})",
                "fa_probe_args:build(*[1])"):
        with pytest.raises(UserError, match="arguments must be literals"):
            check_spec(bad)
    with pytest.raises(UserError, match="its arguments do not parse"):
        check_spec("fa_probe_args:build(1")
    assert split_list(["a:b(1, c=(2, 3)),resnet18", "x:y('p,q')"]) == ["a:b(1, c=(2, 3))", "resnet18", "x:y('p,q')"]


def test_a_name_that_is_not_there_or_not_callable_says_what_is_close(project: Path) -> None:
    (project / "fa_probe_typo.py").write_text("def build():\n    return 1\n")
    with pytest.raises(UserError, match=r"has no attribute 'buld' \(did you mean 'build'\?\)"):
        load_callable("fa_probe_typo:buld")
    with pytest.raises(UserError, match=r"'decoder' is not callable: it is a module \(did you mean 'JSONDecoder'\?\)"):
        load_callable("json:decoder")  # a class named as the submodule holding it (torchaudio.models:wav2letter)
