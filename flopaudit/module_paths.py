"""Dotted module paths (``"layer1.0.conv1"``, ``""`` = root): leaves and per-layer differences."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping


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
