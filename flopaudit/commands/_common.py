"""Argument helpers shared by the sub-commands.

Everything here is checked before any counting starts, and none of it
imports torch: the command line selects cases from the zoo's catalog and
hands them to workers by name.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from flopaudit.callables import check_spec, is_spec
from flopaudit.errors import UserError
from flopaudit.passes import OPTIMIZERS, PASSES, Pass, is_optimizer_spec
from flopaudit.run_defaults import DEFAULT_TIMEOUT_S, DEVICES, DTYPES, usable_cores

if TYPE_CHECKING:
    from flopaudit.execution.refs import CaseRef

MODES = ("eval", "train")


def plain(doc: str | None) -> str:
    """A docstring as plain terminal text: ````x```` -> ``x``, ``:func:`x``` -> ``x``."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", doc or "")
    return text.replace("``", "")


def add_parser(sub: argparse._SubParsersAction, name: str, doc: str | None, help: str, **kw: Any) -> Any:
    """A sub-command parser whose description is ``doc`` as plain text, line breaks kept."""
    return sub.add_parser(name, help=help, description=plain(doc),
                          formatter_class=argparse.RawDescriptionHelpFormatter, **kw)


def split_list(values: Sequence[str] | None) -> list[str]:
    """``["a,b", "c"] -> ["a", "b", "c"]``: accept both repeated and comma lists. A comma
    inside brackets or quotes is not a separator (``mod:build(8, depth=2)`` is one model)."""
    out: list[str] = []
    for v in values or ():
        out += [p.strip() for p in _top_level_parts(v) if p.strip()]
    return out


def _top_level_parts(text: str) -> list[str]:
    parts, start, depth, quote = [], 0, 0, ""
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth <= 0:
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def add_selection_args(parser: argparse.ArgumentParser) -> None:
    """--models/--tags/--full/--input-shape/--inputs/--backends/--mode."""
    parser.add_argument(
        "--models", "-m", nargs="+", metavar="MODEL",
        help="zoo ids or globs ('resnet*'), or module:function (or path/to/file.py:function) returning an nn.Module",
    )
    parser.add_argument("--tags", "-t", nargs="+", metavar="TAG", help="keep only cases with all these tags")
    parser.add_argument("--full", action="store_true", help="the whole zoo instead of the default selection")
    parser.add_argument("--input-shape", metavar="SHAPE", help="input tensor shape, e.g. 1,3,224,224")
    parser.add_argument(
        "--inputs", metavar="MODULE:FUNCTION",
        help="inputs factory returning a tensor, a tuple of args, a dict (or any mapping) of kwargs or flopaudit.inputs.ModelInputs",
    )
    parser.add_argument(
        "--backends", "-b", nargs="+", metavar="BACKEND",
        help="backends to run (default: all; 'flopaudit backends' lists them)",
    )
    parser.add_argument(
        "--mode", choices=MODES, default=None,
        help="the model's own mode, model.train() or model.eval() (dropout, batch-norm statistics), not what "
             "is counted: that is --pass (default: eval, except zoo cases made to count in train mode; "
             "train with --pass train)",
    )
    add_pass_args(parser)


def add_pass_args(parser: argparse.ArgumentParser) -> None:
    """--pass/--loss/--optimizer: what each backend counts (see flopaudit.passes)."""
    parser.add_argument(
        "--pass", dest="pass_kind", choices=PASSES, default="inference",
        help="what is counted: one forward pass (inference, the default) or one training step (train: forward, "
             "loss, backward, optional optimizer step), with the backends that count it; the model's mode is "
             "--mode's (train by default with --pass train)",
    )
    parser.add_argument(
        "--loss", metavar="MODULE:FUNCTION",
        help="with --pass train: the loss, a function of the model's output returning a scalar tensor "
             "(default: the sum of the output's floating tensors)",
    )
    parser.add_argument(
        "--optimizer", default=None, metavar="NAME|MODULE:FUNCTION",
        help=f"with --pass train: also count one optimizer step: a torch.optim optimizer ({', '.join(OPTIMIZERS)}; "
             "torch's defaults, lr=1e-3 for sgd, adam and adamw), or your own, a function or class taking the list "
             "of parameters and returning an optimizer or a list of them ('mypkg.optim:Lion', "
             "'torch.optim:SGD(lr=0.1, momentum=0.9)')")


def pass_from_args(args: argparse.Namespace) -> Pass:
    """The :class:`~flopaudit.passes.Pass` the arguments ask for (a bad combination, or a loss
    file that is not there, is a user error)."""
    step = Pass(getattr(args, "pass_kind", None) or "inference", getattr(args, "loss", None),
                getattr(args, "optimizer", None))
    if step.loss:
        check_spec(step.loss, "loss")
    if is_optimizer_spec(step.optimizer):
        check_spec(step.optimizer, "optimizer")
    return step


def add_count_args(p: argparse.ArgumentParser, *, jobs: bool = True) -> None:
    """--timeout, --jobs, --max-memory and --no-isolation (alias --no-isolate)."""
    p.add_argument(
        "--timeout", type=parse_timeout, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"time limit in seconds for each phase: building and running a model, each backend's count "
             f"(default: {DEFAULT_TIMEOUT_S:g})",
    )
    if jobs:
        p.add_argument("--jobs", "-j", type=parse_jobs, default=None, metavar="N",
                       help=f"worker processes counting at once (default: the usable cores, here {usable_cores()})")
    p.add_argument("--max-memory", type=parse_gib, default=None, metavar="GB",
                   help="stop a phase that maps more than GB GiB on top of its worker (status error; default: no limit)")
    p.add_argument("--no-isolation", "--no-isolate", dest="no_isolation", action="store_true",
                   help="build and count in this process: no timeout, no crash protection (debugging; serial)")


def selection_from_args(args: argparse.Namespace) -> list[CaseRef]:
    """The selected cases as :class:`CaseRef` names, with the input override of the arguments.

    Notes on skipped cases (an optional library missing) go to stderr.
    """
    from flopaudit.execution.refs import CaseRef
    from flopaudit.inputs import parse_shape
    from flopaudit.zoo.catalog import select

    shape = parse_shape(args.input_shape) if getattr(args, "input_shape", None) else None
    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    selection = select(split_list(args.models), split_list(args.tags), full=args.full, shard=shard)
    for note in selection.notes:
        print(f"flopaudit: note: {note}", file=sys.stderr)
    if not selection.entries:
        raise UserError("no model matches the selection; run 'flopaudit zoo' to list models and tags")
    refs = [CaseRef(i, shape, getattr(args, "inputs", None)) for i in selection.ids]
    for ref in refs:
        if ref.is_spec and shape is None and not getattr(args, "inputs", None):
            raise UserError(f"model {ref.id!r} needs --input-shape (e.g. 1,3,224,224) or --inputs module:function")
        if ref.is_spec:
            check_spec(ref.id, "model")
    if getattr(args, "inputs", None):
        check_spec(args.inputs, "inputs factory")
    return refs


def strict_inputs(args: argparse.Namespace) -> bool:
    """The user chose the model or its inputs: a model or factory that fails is their mistake."""
    return bool(args.input_shape or args.inputs or any(is_spec(m) for m in split_list(args.models)))


def backends_from_args(args: argparse.Namespace) -> list[str]:
    """The backends named, or every backend that counts the pass asked for."""
    from flopaudit.run import chosen_backends, default_backends

    return chosen_backends(split_list(args.backends) or default_backends(pass_from_args(args).kind))


def parse_jobs(text: str) -> int:
    """``--jobs``: a positive number of worker processes."""
    try:
        jobs = int(text)
    except ValueError:
        raise UserError(f"invalid --jobs {text!r}: expected a positive integer") from None
    if jobs < 1:
        raise UserError(f"invalid --jobs {text!r}: expected a positive integer")
    return jobs


def _positive(text: str, option: str, example: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"invalid {option} {text!r}: expected a positive number, e.g. {example}") from None
    if not (value > 0 and math.isfinite(value)):
        raise UserError(f"invalid {option} {text!r}: expected a positive, finite number, e.g. {example}")
    return value


def parse_timeout(text: str) -> float:
    """``--timeout``: positive, finite seconds."""
    return _positive(text, "--timeout", "60")


def parse_gib(text: str) -> float:
    """``--max-memory``: a positive, finite number of GiB."""
    return _positive(text, "--max-memory", "8 or 0.5")


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UserError(f"invalid --shard {text!r}: expected i/n, e.g. 1/4") from None
    if not (n >= 1 and 1 <= i <= n):
        raise UserError(f"invalid --shard {text!r}: need 1 <= i <= n")
    return i, n


def add_placement_args(p: argparse.ArgumentParser) -> None:
    """--device and --dtype (shared with run)."""
    p.add_argument("--device", default="cpu", type=parse_device, metavar="DEVICE",
                   help=f"where models are put once built: {' or '.join(DEVICES)} (cuda:N for another GPU; "
                        "default: cpu)")
    p.add_argument("--dtype", default="float32", choices=DTYPES,
                   help="the floating dtype of parameters, buffers and floating inputs (default: float32)")


def parse_device(text: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; cuda only where torch here was built with it and a driver is present."""
    kind, _, index = text.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise UserError(f"invalid --device {text!r}: expected cpu, cuda or cuda:N")
    if kind == "cuda":
        reason = cuda_missing()
        if reason:
            raise UserError(f"--device {text}: no CUDA here ({reason})")
    return text


def cuda_missing() -> str:
    """Why torch cannot use CUDA here ("" when it may), read without importing torch: the installed torch's
    build (``torch/version.py``) and the NVIDIA driver's files. A worker checks again with torch."""
    import importlib.util
    import os
    import re

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return "torch is not installed"
    try:
        with open(os.path.join(os.path.dirname(spec.origin), "version.py"), encoding="utf-8") as fh:
            version = fh.read()
    except OSError:
        version = ""
    built = re.search(r"^(cuda|hip)\s*:.*?=\s*'[^']+'", version, re.M)
    if version and not built:
        return "this torch is a CPU-only build"
    if not (os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidiactl")
            or os.path.exists("/dev/kfd")):
        return "no GPU driver found"
    return ""
