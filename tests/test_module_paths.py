"""Dotted module paths: naming a module from outside and inside a wrapper, ancestors, first names."""

from __future__ import annotations

from torch import nn

from flopaudit.module_paths import ancestors, first_names, leaf_paths, relative_path


def test_relative_path() -> None:
    assert relative_path("Net", "Net") == ""
    assert relative_path("Net.a.b", "Net") == "a.b"
    assert relative_path("Network.a", "Net") is None
    assert relative_path("", "model") is None


def test_ancestors() -> None:
    assert ancestors("") == ("",)
    assert ancestors("a") == ("", "a")
    assert ancestors("a.b.c") == ("", "a", "a.b", "a.b.c")


def test_first_names_name_a_shared_module_once() -> None:
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    names = first_names(model)
    assert names[id(model)] == "" and names[id(shared)] == "0" and names[id(model[1])] == "1"
    assert len(names) == 3


def test_leaf_paths() -> None:
    assert leaf_paths(["a", "a.b", "a.c", "ab", "a.c"]) == ["a.b", "a.c", "ab"]
