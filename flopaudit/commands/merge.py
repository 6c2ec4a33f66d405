"""flopaudit merge A.json B.json ... --out DIR: join the results of several runs (e.g. shards).

Each input is a ``results.json`` (or the directory holding one). Results
are joined case by case; a (model, backend) pair found in two files is an
error unless ``--prefer-last`` lets the later file win. Files that counted
something else (a training step and a forward pass; another device or
dtype: :data:`COUNTED_AS`) are not merged: the report states one of each
for all its counts. The environment is the first file's, plus
``merged_from`` and a note when the files were made with different torch
versions.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flopaudit.commands._common import plain
from flopaudit.errors import UserError

if TYPE_CHECKING:
    from flopaudit.records import AuditRun, CaseInfo, CountResult

#: What a run's environment says of how every count was made, and what its absence means.
COUNTED_AS = (("pass", "inference"), ("device", "cpu"), ("dtype", "the models' own dtype"))

EPILOG = """examples:
  flopaudit run --shard 1/2 --out part1 && flopaudit run --shard 2/2 --out part2
  flopaudit merge part1 part2 --out all
  flopaudit merge old/results.json rerun/results.json --prefer-last --out fixed"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge", help="join results files (e.g. shards) into one", description=plain(__doc__), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", nargs="+", metavar="RESULTS.json", help="results files (or directories holding one)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="where the merged results and reports go")
    p.add_argument("--prefer-last", action="store_true",
                   help="when two files hold the same model and backend, keep the later file's result")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from flopaudit.commands.run import write_all
    from flopaudit.results_io import load_results

    runs = [(str(path), load_results(path)) for path in args.results]
    merged, notes = merge_runs(runs, prefer_last=args.prefer_last)
    paths = write_all(merged, Path(args.out))
    print(f"merged {len(runs)} files: {len(merged.cases)} models, {len(merged.results)} results")
    for note in notes:
        print(f"note: {note}")
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def merge_runs(runs: Sequence[tuple[str, AuditRun]], *, prefer_last: bool = False) -> tuple[AuditRun, list[str]]:
    """Join ``(name, run)`` pairs into one run; return it and the notes for the user.

    Cases come in zoo order (ids not in the zoo after them, in the order
    first seen), each case's results in the order of
    :func:`~flopaudit.adapters.backend_names` (other backends after them).
    A duplicate (model, backend) raises :class:`UserError` unless
    ``prefer_last``; then the later run's result, and case info, win.
    """
    from flopaudit.records import AuditRun
    if not runs:
        raise UserError("nothing to merge: give at least one results file")
    for key, default in COUNTED_AS:
        values = {name: dict(run.environment).get(key, default) for name, run in runs}
        if len(set(values.values())) > 1:
            raise UserError(f"the files counted different things ({key}: "
                            + "; ".join(f"{v} in {n}" for n, v in values.items())
                            + f"): merge only runs with the same {key}")
    results: dict[tuple[str, str], CountResult] = {}
    origin: dict[tuple[str, str], str] = {}
    cases: dict[str, CaseInfo] = {}
    costs: dict[str, object] = {}
    replaced = 0
    for name, run in runs:
        for r in run.results:
            key = (r.model, r.backend)
            if key in results:
                if not prefer_last:
                    raise UserError(
                        f"{r.model} / {r.backend} is in both {origin[key]} and {name}; "
                        "merge files with different models or backends, or pass --prefer-last"
                    )
                replaced += 1
            results[key] = r
            origin[key] = name
        for info in run.cases:
            if prefer_last or info.id not in cases:
                cases[info.id] = info
        for cost in run.costs:  # measured costs: the first file's, or the last one's with --prefer-last
            if prefer_last or cost.model not in costs:
                costs[cost.model] = cost
    models = _model_order(list(dict.fromkeys([m for m, _ in results] + list(cases))))
    backends = _backend_order(list(dict.fromkeys(b for _, b in results)))
    ordered = tuple(results[(m, b)] for m in models for b in backends if (m, b) in results)
    infos = tuple(cases[m] for m in models if m in cases)
    env = dict(runs[0][1].environment)
    env["merged_from"] = ", ".join(name for name, _ in runs)
    notes: list[str] = []
    torch_versions = {name: dict(run.environment).get("torch", "?") for name, run in runs}
    if len(set(torch_versions.values())) > 1:
        note = "torch versions differ: " + ", ".join(f"{v} ({n})" for n, v in torch_versions.items())
        env["note"] = note
        notes.append(note)
    if replaced:
        notes.append(f"{replaced} result(s) replaced by a later file (--prefer-last)")
    weights = next((run.cost_weights for _, run in runs if run.cost_weights), ())
    cost_models = _model_order(list(costs)) if costs else []
    return AuditRun(ordered, infos, tuple(env.items()), tuple(costs[m] for m in cost_models), weights), notes


def _model_order(models: list[str]) -> list[str]:
    from flopaudit.zoo import all_cases

    position = {c.id: k for k, c in enumerate(all_cases())}
    first_seen = {m: k for k, m in enumerate(models)}
    return sorted(models, key=lambda m: (m not in position, position.get(m, 0), first_seen[m]))


def _backend_order(backends: list[str]) -> list[str]:
    from flopaudit.adapters import backend_names

    order = backend_names()
    known = [b for b in order if b in backends]
    return known + [b for b in backends if b not in order]
