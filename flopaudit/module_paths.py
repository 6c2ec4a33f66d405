"""Dotted module paths (``"layer1.0.conv1"``, ``""`` = root): naming, leaves and per-layer differences."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def relative_path(path: str, root: str) -> str | None:
    """``path`` seen from inside ``root``: ``("net.a.b", "net") -> "a.b"``,
    ``("net", "net") -> ""``; None for a path outside ``root`` (``"network.a"``)."""
    if path == root:
        return ""
    if path.startswith(root + "."):
        return path[len(root) + 1 :]
    return None


def ancestors(path: str) -> tuple[str, ...]:
    """``"a.b.c" -> ("", "a", "a.b", "a.b.c")``: a module path and every path above it, the root first."""
    if not path:
        return ("",)
    parts = path.split(".")
    return ("",) + tuple(".".join(parts[: i + 1]) for i in range(len(parts)))


def first_names(model: nn.Module) -> dict[int, str]:
    """``id(module) -> dotted path`` for every module of ``model``; a shared module under its first name."""
    names: dict[int, str] = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name)
    return names


def leaf_paths(paths: Iterable[str]) -> list[str]:
    """The paths no other path lies under (``"a.b"`` lies under ``"a"``), sorted,
    in O(n log n): a path's descendants sort right after ``path + "."``."""
    ordered = sorted(set(paths))
    out = []
    for p in ordered:
        prefix = p + "."
        i = bisect.bisect_left(ordered, prefix)
        if not (i < len(ordered) and ordered[i].startswith(prefix)):
            out.append(p)
    return out


def layer_differences(mine: Mapping[str, int], theirs: Mapping[str, int], limit: int) -> tuple[tuple[str, int], ...]:
    """``mine - theirs`` per leaf module path (root excluded), nonzero ones
    only, largest first (ties by path), at most ``limit``."""
    paths = set(mine) | set(theirs)
    paths.discard("")
    diffs = [(p, mine.get(p, 0) - theirs.get(p, 0)) for p in leaf_paths(paths)]
    diffs = [(p, d) for p, d in diffs if d]
    diffs.sort(key=lambda x: (-abs(x[1]), x[0]))
    return tuple(diffs[:limit])
