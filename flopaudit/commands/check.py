"""flopaudit check: re-count every golden and report what changed.

Each golden file in DIR (written by ``flopaudit snapshot``) is counted again
with the same model, inputs and backend and compared with the stored counts:
exactly by default, or within ``--tolerance``. A change prints the model and
backend, the total before and after, the ops and modules whose counts moved,
and whether the backend's version, torch's version, or neither changed.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from flopaudit.commands._common import add_count_args, plain, split_list
from flopaudit.commands.snapshot import count_options
from flopaudit.errors import UserError, did_you_mean
from flopaudit.fail_on import add_fail_on_argument, check_failures, classes_from_args, report_failures
from flopaudit.passes import PASSES

if TYPE_CHECKING:
    from flopaudit.goldens.record import Golden

Entry = tuple[Path, "Golden"]
"""A golden and the file it was read from."""

EXIT_CODES = """\
exit status:
  0  every count matches its golden (or, with --accept, drifted goldens were rewritten),
     and nothing else listed in --fail-on occurred
  1  drift (the default --fail-on): a count, breakdown or status differs from its golden;
     or another class listed in --fail-on occurred (error, timeout, unexplained)
  2  usage error: goldens directory missing, no golden files (or none matching the
     selection), a golden that is missing, not valid JSON or not a flopaudit golden,
     an unknown model or backend named in a golden, or an unknown --fail-on class"""
"""README-ready text; also the epilog of ``flopaudit check --help``."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="re-count golden snapshots and fail on any change",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXIT_CODES + "\n\nexample: flopaudit check --goldens goldens/ --backends fvcore",
    )
    p.add_argument("--goldens", "-g", required=True, metavar="DIR", help="directory of golden files (or one file)")
    p.add_argument(
        "--tolerance", default="0", metavar="REL",
        help="allowed relative change of each count, e.g. 0.01 or 1%% (default 0: exact)",
    )
    p.add_argument("--models", "-m", nargs="+", metavar="MODEL", help="check only goldens of these model ids or globs")
    p.add_argument("--backends", "-b", nargs="+", metavar="BACKEND", help="check only goldens of these backends")
    p.add_argument("--pass", dest="pass_kind", choices=PASSES, default=None,
                   help="check only goldens of this pass (default: all; each is counted again in its own pass)")
    p.add_argument("--accept", action="store_true", help="rewrite drifted goldens with the new counts")
    p.add_argument("--max-rows", type=int, default=20, metavar="N", help="diff rows shown per section (default 20)")
    add_fail_on_argument(p, "drift")
    add_count_args(p)
    p.set_defaults(handler=main)


def parse_tolerance(text: str) -> float:
    """``"0.01" -> 0.01``; ``"1%" -> 0.01``."""
    raw = text.strip()
    scale = 100.0 if raw.endswith("%") else 1.0
    try:
        value = float(raw.rstrip("%")) / scale
    except ValueError:
        raise UserError(f"invalid --tolerance {text!r}: expected a number like 0.01 or 1%") from None
    if not value >= 0:
        raise UserError(f"invalid --tolerance {text!r}: must be >= 0")
    return value


def main(args: argparse.Namespace) -> int:
    from flopaudit.goldens import compare, summarize
    from flopaudit.goldens.recount import golden_snapshot_command, recount

    tolerance = parse_tolerance(args.tolerance)
    fail_on = classes_from_args(args)
    root = Path(args.goldens)
    models, backends = split_list(args.models), split_list(args.backends)
    entries = load_selection(root, models, backends)
    if args.pass_kind:
        entries = [(path, g) for path, g in entries if g.pass_.kind == args.pass_kind]
        if not entries:
            raise UserError(f"no golden in {root} of a {args.pass_kind} pass matches the selection")
    goldens = [g for _, g in entries]
    runs: list = []
    current = recount(goldens, runs=runs, also=("reference",) if "unexplained" in fail_on else (),
                      **count_options(args))
    diffs = [compare(g, c, tolerance) for g, c in zip(goldens, current)]
    out_dir = str(root if root.is_dir() else root.parent)
    for (path, _), d in zip(entries, diffs):
        if not d.drifted:
            print(d.headline() + "".join(f"; {n}" for n in d.notes()))
            continue
        print(d.render(max_rows=args.max_rows))
        if not args.accept:
            print(f"  golden: {path}")
            print(f"  accept: {accept_command(root, d.golden.model, d.golden.backend, d.golden.pass_.kind)}")
            print(f"  or regenerate: {golden_snapshot_command(d.golden, out_dir)}")
    drifted = [k for k, d in enumerate(diffs) if d.drifted]
    print(summarize(diffs) + (f" (tolerance {tolerance:g})" if tolerance else ""))
    if drifted and args.accept:
        for path in rewrite([entries[k] for k in drifted], [current[k] for k in drifted]):
            print(f"accepted: rewrote {path}")
        fail_on = fail_on - {"drift"}
    return report_failures(check_failures(diffs, fail_on, runs), fail_on)


def accept_command(root: Path, model: str, backend: str, kind: str = "inference") -> str:
    """The ``flopaudit check ... --accept`` line that rewrites one drifted golden."""
    argv = ["flopaudit", "check", "--goldens", str(root), "--models", model, "--backends", backend]
    if kind == "train":
        argv += ["--pass", "train"]
    return shlex.join([*argv, "--accept"])


def load_selection(root: Path, models: Sequence[str], backends: Sequence[str]) -> list[Entry]:
    """Read, validate and filter the goldens under ``root``: ``[(path, golden), ...]``.

    Every problem is a :class:`UserError` (exit status 2) naming the file and
    the command that writes it again.
    """
    from flopaudit.adapters import backend_names
    from flopaudit.goldens import GoldenError, list_golden_paths, names_from_filename, read_golden_file
    from flopaudit.goldens.recount import case_for, is_glob, matches, snapshot_command

    if not root.exists():
        raise UserError(f"goldens directory {root} does not exist; create it with: flopaudit snapshot --out {root}")
    paths = [root] if root.is_file() else list_golden_paths(root)
    out_dir = str(root if root.is_dir() else root.parent)
    if not paths:
        raise UserError(f"no golden files (*.json) in {root}; create them with: flopaudit snapshot --out {root}")
    known_backends = backend_names()
    unknown_backends = [b for b in backends if b not in known_backends]
    if unknown_backends:
        name = unknown_backends[0]
        raise UserError(f"unknown backend {name!r}{did_you_mean(name, known_backends)}; "
                        f"valid backends: {', '.join(known_backends)}")
    entries: list[Entry] = []
    for path in paths:
        try:
            golden_file = read_golden_file(path)
        except GoldenError as exc:
            names = names_from_filename(path)
            if names and not (matches(names[0], models) and (not backends or names[1] in backends)):
                continue  # outside the selection: not our business
            model, backend = names if names else ("MODEL", "BACKEND")
            raise UserError(
                f"golden {path}: {exc}; regenerate it with: {snapshot_command(model, backend, out_dir)}"
            ) from None
        for g in golden_file.goldens:
            if matches(g.model, models) and (not backends or g.backend in backends):
                entries.append((path, g))
    present = {(g.model, g.backend) for _, g in entries}
    for model in (m for m in models if not is_glob(m)):
        for backend in backends or [None]:
            if not any(m == model and backend in (None, b) for m, b in present):
                what = f"{model} / {backend}" if backend else f"model {model}"
                raise UserError(
                    f"no golden for {what} in {root}; create it with: {snapshot_command(model, backend, out_dir)}"
                )
    if not entries:
        raise UserError(
            f"no golden in {root} matches the selection"
            + (f" --models {' '.join(models)}" if models else "")
            + (f" --backends {' '.join(backends)}" if backends else "")
        )
    seen_cases: set[tuple[str, tuple[int, ...] | None, str | None]] = set()
    for path, g in entries:
        if g.backend not in known_backends:
            raise UserError(
                f"unknown backend {g.backend!r} in golden {path}; valid backends: {', '.join(known_backends)}"
            )
        key = (g.model, g.input_shape, g.inputs_factory)
        if key not in seen_cases:
            seen_cases.add(key)
            try:
                case_for(*key)
            except UserError as exc:
                raise UserError(f"{exc} (named in golden {path})") from None
    return entries


def rewrite(entries: Sequence[Entry], current: Sequence[Golden]) -> list[Path]:
    """Write ``current[k]`` over the golden ``entries[k]``; other records of a shared file are kept."""
    from flopaudit.goldens import read_golden_file, write_goldens

    by_path: dict[Path, dict[tuple[str, str, str], Golden]] = {}
    for (path, g), c in zip(entries, current):
        by_path.setdefault(path, {})[(g.model, g.backend, g.pass_.kind)] = c
    written = []
    for path, replacements in by_path.items():
        records = list(read_golden_file(path).goldens)
        new = [replacements.get((r.model, r.backend, r.pass_.kind), r) for r in records]
        write_goldens(path, new)
        written.append(path)
    return written
