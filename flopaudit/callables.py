"""User code named on the command line: ``module:function`` or ``path/to/file.py:function``.

A model, an inputs factory (``--inputs``) and a loss (``--loss``) are named
by a *spec*: a dotted module name or the path of a Python file, a colon, and
an attribute path in it (``models.resnet:build``, ``models/resnet.py:build``,
``train.py:Net.small``), optionally called with literal arguments:
``timm:create_model('convnext_nano', num_classes=10)``,
``torchvision.models:resnet50(weights=None)`` (numbers, strings, tuples, lists,
dicts, booleans and None, as Python writes them; read with
``ast.literal_eval``, so nothing is run to read them). Positional arguments
come before what the caller passes (a loss: the model's output), keywords as
written: ``mymod:loss(scale=0.5)`` is called as ``loss(output, scale=0.5)``.

- :func:`check_spec` reads a spec without importing anything (the CLI does
  this; user code runs only in workers).
- :func:`origin` says which file a spec's code comes from, found as the
  import system would find it but without running any of it: the file
  itself for a path; for a module name, the file (or package directory) of
  its top-level module. The result cache keeps it in a case's key, so two
  projects that each have a ``net.py`` never share a count.
- :func:`load_callable` imports the module and returns the callable (in a
  worker).

A module is looked for on ``sys.path`` and then in the working directory,
as ``python -m`` would find it there (the directory is added at the end of
``sys.path``, so it hides nothing installed). A file is imported as the
module its packages make it: ``models/resnet.py`` with a
``models/__init__.py`` is ``models.resnet``, imported with the directory
above ``models`` on ``sys.path``, so its relative imports work; a file
outside any package is imported under its own name, also where ``import``
cannot spell it (``train-cifar.py`` is loaded as module ``train-cifar``). Either way the module
found must be that file: a module of the same name imported from elsewhere
first is a user error, never a silent swap.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import os
import sys
import types
from collections.abc import Callable
from typing import Any

from flopaudit.errors import UserError, did_you_mean

FILE_SUFFIX = ".py"


def is_spec(name: str) -> bool:
    """Does ``name`` name user code (a spec) rather than a zoo id or glob? (Zoo ids hold no colon.)"""
    return ":" in name


def split_spec(spec: str, what: str = "model") -> tuple[str, str]:
    """The module part (a dotted name or a ``.py`` path) and the attribute path of ``spec``
    (its arguments checked and left out: :func:`call_arguments`)."""
    call_arguments(spec, what)
    module, _, attr = spec.partition("(")[0].rpartition(":")  # (the last colon: a Windows drive keeps its own)
    if not module or not attr or not all(p.isidentifier() for p in attr.split(".")):
        raise UserError(f"cannot read {what} {spec!r}: expected 'module:function' or 'path/to/file.py:function'")
    if not module.endswith(FILE_SUFFIX) and not all(p.isidentifier() for p in module.split(".")):
        raise UserError(f"cannot read {what} {spec!r}: expected 'module:function' or 'path/to/file.py:function'")
    return module, attr


def call_arguments(spec: str, what: str = "model") -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """The literal arguments written after a spec's function (``...:build(16, depth=2)``), or
    None where it has none; a user error where they are not literals."""
    _, paren, call = spec.partition("(")
    if not paren:
        return None
    bad = (f"cannot read {what} {spec!r}: arguments must be literals (numbers, strings, tuples, lists, dicts, "
           "True, False, None), as in 'timm:create_model(\"resnet18\", num_classes=10)'")
    try:
        node = ast.parse("f(" + call, mode="eval").body
    except SyntaxError as exc:
        raise UserError(f"cannot read {what} {spec!r}: its arguments do not parse ({exc.msg})") from None
    if not isinstance(node, ast.Call) or any(k.arg is None for k in node.keywords) or any(
            isinstance(a, ast.Starred) for a in node.args):
        raise UserError(bad)
    try:
        return (tuple(ast.literal_eval(a) for a in node.args),
                {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None})
    except ValueError:
        raise UserError(bad) from None


def check_spec(spec: str, what: str = "model") -> None:
    """A user error unless ``spec`` names a module or an existing ``.py`` file, and an attribute."""
    module, _ = split_spec(spec, what)
    if module.endswith(FILE_SUFFIX) and not os.path.isfile(module):
        raise UserError(f"cannot read {what} {spec!r}: no file {module!r} (from {os.getcwd()})")


def file_module(path: str) -> tuple[str, str]:
    """The directory to import ``path`` from and the module name it has there: the name its
    packages (parent directories holding ``__init__.py``) make it."""
    path = os.path.abspath(path)
    directory, name = os.path.split(path[: -len(FILE_SUFFIX)])
    parts = [name]
    while os.path.isfile(os.path.join(directory, "__init__.py")) and os.path.basename(directory).isidentifier():
        directory, package = os.path.split(directory)
        parts.insert(0, package)
    return directory, ".".join(parts)


def origin(spec: str) -> str:
    """Where the code ``spec`` names lives, without running any of it (see the module
    docstring): an absolute path, or "" where the import system finds no file (a built-in
    module, or none found)."""
    module = spec.partition("(")[0].rpartition(":")[0]
    if module.endswith(FILE_SUFFIX):
        return os.path.realpath(module)
    top = module.partition(".")[0]
    found = _find_top(top)
    if found is None:
        return ""
    if found.origin and found.has_location:
        return os.path.realpath(found.origin)
    locations = list(found.submodule_search_locations or ())  # a namespace package: its directories
    return os.pathsep.join(os.path.realpath(p) for p in locations)


def _find_top(top: str) -> Any:
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        found = None
    here = os.getcwd()
    if found is None and not any(os.path.abspath(p or ".") == here for p in sys.path):
        sys.path.append(here)  # where _import() looks last
        try:
            found = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            found = None
        finally:
            sys.path.remove(here)
    return found


def load_callable(spec: str, *, what: str = "model") -> Callable[..., Any]:
    """Import what ``spec`` names and return it; a user error if it cannot be read."""
    module_name, attr = split_spec(spec, what)
    try:
        module = _import_file(module_name) if module_name.endswith(FILE_SUFFIX) else _import(module_name)
    except UserError as exc:
        raise UserError(f"cannot import {what} {spec!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any import failure is the user's to fix
        raise UserError(f"cannot import module {module_name!r} for {what} {spec!r}: {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"cannot read {what} {spec!r}: module {module_name!r} has no attribute {attr!r}"
                            f"{_did_you_mean(part, obj)}")
        parent, obj = obj, getattr(obj, part)
    if not callable(obj):
        if isinstance(obj, types.ModuleType):  # (a class named as the submodule holding it)
            raise UserError(f"cannot read {what} {spec!r}: {attr!r} is not callable: it is a module"
                            f"{_did_you_mean(part, parent, callable_only=True)}")
        raise UserError(f"cannot read {what} {spec!r}: {attr!r} is not callable: it is of type {type(obj).__name__}")
    arguments = call_arguments(spec, what)
    return obj if arguments is None else functools.partial(obj, *arguments[0], **arguments[1])


def _did_you_mean(name: str, holder: Any, callable_only: bool = False) -> str:
    """`` (did you mean 'X'?)`` for the names of ``holder`` closest to ``name`` (a class
    named as its module is: ``torchaudio.models:wav2letter`` for ``Wav2Letter``), else ""."""
    return did_you_mean(name, (n for n in dir(holder) if not n.startswith("_")
                               and (not callable_only or callable(getattr(holder, n, None)))))


def _import(module_name: str) -> Any:
    """Import ``module_name``, looking in the working directory last (see the module docstring)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.partition(".")[0]
        here = os.getcwd()
        if exc.name != top or any(os.path.abspath(p or ".") == here for p in sys.path):
            raise
        sys.path.append(here)
        return importlib.import_module(module_name)


def _import_file(path: str) -> Any:
    """Import the file at ``path`` as the module its packages make it (:func:`file_module`)."""
    if not os.path.isfile(path):
        raise UserError(f"no file {path!r} (from {os.getcwd()})")
    directory, name = file_module(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # as ``python path/to/file.py`` puts its directory first
    if name.rpartition(".")[2].isidentifier():
        module = importlib.import_module(name)
    else:
        module = _load_unnamable(name, path)
    found = getattr(module, "__file__", None)
    if not found or os.path.realpath(found) != os.path.realpath(path):
        raise UserError(f"module {name!r} is {found or 'built in'}, not the file {path!r}: a module of that name was "
                        "found first; rename the file or name it as module:function")
    return module


def _load_unnamable(name: str, path: str) -> Any:
    """Load a file whose name ``import`` cannot spell (``train-cifar.py``, ``my net.py``) as the module
    ``name`` (its own name, in the package it is in), as ``importlib`` loads any file; once."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    package = name.rpartition(".")[0]
    if package:
        importlib.import_module(package)  # (its relative imports need the package)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot load {path!r} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


__all__ = ["FILE_SUFFIX", "call_arguments", "check_spec", "is_spec", "file_module", "load_callable", "origin", "split_spec"]
