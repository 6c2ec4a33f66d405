"""Keep backends away from the user's model and process.

Three tools:

* :func:`fingerprint` / :func:`fingerprint_diff` describe everything a backend
  could change on a model (state_dict keys and values, hooks, attributes,
  train/eval flags, devices) and name the changes in plain words;
* :func:`quiet` silences a backend's prints at the file-descriptor level and
  hands back what it printed;
* :func:`run_isolated` runs a count in a forked child process with a timeout,
  so a backend that hangs or crashes the interpreter becomes a status.
"""

from __future__ import annotations

import contextlib
import faulthandler
import hashlib
import io
import multiprocessing
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import nn

from flopaudit.execution.failures import exit_description
from flopaudit.execution.protocol import can_fork

T = TypeVar("T")

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks",
)


@dataclass(frozen=True)
class ModelFingerprint:
    """Everything about a model that a counting backend must leave alone."""

    state_keys: tuple[str, ...]
    tensor_digests: tuple[tuple[str, str], ...]
    """``(state_dict key, digest)`` per tensor."""
    hooks: tuple[tuple[str, str, int], ...]
    training: tuple[tuple[str, bool], ...]
    devices: tuple[str, ...]
    attributes: tuple[tuple[str, tuple[str, ...]], ...]
    global_hooks: tuple[tuple[str, int], ...]
    uninitialized: tuple[str, ...] = ()
    """Keys of lazy modules' parameters and buffers not materialised yet."""


def is_uninitialized(t: torch.Tensor) -> bool:
    """A lazy module's parameter or buffer before its first forward (no shape, no data)."""
    return isinstance(t, torch.nn.parameter.UninitializedTensorMixin)


def _tensor_bytes(t: torch.Tensor) -> bytes:
    if is_uninitialized(t):
        return repr(("uninitialized", type(t).__name__, id(t))).encode()
    if t.device.type == "meta" or t.numel() == 0:
        return repr((tuple(t.shape), str(t.dtype))).encode()
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes()


def _tensor_identity(t: torch.Tensor) -> bytes:
    # NB: an in-place update through the dispatcher (running statistics, add_,
    # copy_) bumps the version counter; a write through ``.data`` does not, nor
    # one to a tensor made inside ``torch.inference_mode``, which has no counter.
    if is_uninitialized(t):
        return repr(("uninitialized", type(t).__name__, id(t))).encode()
    version = "inference" if t.is_inference() else t._version
    return repr((t.data_ptr(), version, tuple(t.shape), str(t.dtype), str(t.device))).encode()


def fingerprint(model: nn.Module, exact: bool = True) -> ModelFingerprint:
    """Take a :class:`ModelFingerprint` of ``model``.

    ``exact`` hashes every tensor's bytes. Without it, tensors are identified
    by storage address and version counter, which is far cheaper and catches
    replaced tensors and in-place updates (used for the side-effect report on
    the copy a backend counts; the user's model is protected by the copy).
    A lazy module's parameter that is not materialised yet (it has no data)
    is identified by its class alone and listed in ``uninitialized``.
    """
    state = model.state_dict(keep_vars=True)
    tensor_key = _tensor_bytes if exact else _tensor_identity
    digests: list[tuple[str, str]] = []
    uninitialized: list[str] = []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if is_uninitialized(value):
            uninitialized.append(key)
            data = type(value).__name__.encode()
        else:
            data = tensor_key(value)
        digests.append((key, hashlib.blake2b(data, digest_size=16).hexdigest()))
    hooks: list[tuple[str, str, int]] = []
    training: list[tuple[str, bool]] = []
    attributes: list[tuple[str, tuple[str, ...]]] = []
    for name, module in model.named_modules(remove_duplicate=False):
        for hook_dict in _HOOK_DICTS:
            n = len(getattr(module, hook_dict, {}) or {})
            if n:
                hooks.append((name, hook_dict.strip("_"), n))
        training.append((name, module.training))
        attributes.append((name, tuple(sorted(vars(module)))))
    devices = sorted({str(t.device) for t in state.values() if isinstance(t, torch.Tensor) and not is_uninitialized(t)})
    from torch.nn.modules import module as module_mod

    global_hooks = tuple(
        (attr, len(getattr(module_mod, attr)))
        for attr in sorted(vars(module_mod))
        if attr.startswith("_global_") and isinstance(getattr(module_mod, attr), dict)
    )
    return ModelFingerprint(
        state_keys=tuple(state.keys()),
        tensor_digests=tuple(digests),
        hooks=tuple(hooks),
        training=tuple(training),
        devices=tuple(devices),
        attributes=tuple(attributes),
        global_hooks=global_hooks,
        uninitialized=tuple(uninitialized),
    )


def fingerprint_diff(before: ModelFingerprint, after: ModelFingerprint) -> list[str]:
    """Name each difference between two fingerprints in one line of words."""
    changes: list[str] = []
    added = [k for k in after.state_keys if k not in set(before.state_keys)]
    removed = [k for k in before.state_keys if k not in set(after.state_keys)]
    if added:
        changes.append(f"added state_dict keys: {_short(added)}")
    if removed:
        changes.append(f"removed state_dict keys: {_short(removed)}")
    materialised = [k for k in before.uninitialized if k not in set(after.uninitialized)]
    if materialised:
        changes.append(f"materialised lazy parameters: {_short(materialised)}")
    after_digests = dict(after.tensor_digests)
    changed = [k for k, d in before.tensor_digests
               if k in after_digests and after_digests[k] != d and k not in set(materialised)]
    if changed:
        changes.append("changed parameter or buffer values")
    if before.hooks != after.hooks:
        b, a = dict(((m, k), n) for m, k, n in before.hooks), dict(((m, k), n) for m, k, n in after.hooks)
        left = sorted(f"{m or '<root>'}.{k}" for (m, k), n in a.items() if n > b.get((m, k), 0))
        gone = sorted(f"{m or '<root>'}.{k}" for (m, k), n in b.items() if n > a.get((m, k), 0))
        if left:
            changes.append(f"left hooks on: {_short(left)}")
        if gone:
            changes.append(f"removed hooks from: {_short(gone)}")
    if before.training != after.training:
        flipped = [m or "<root>" for (m, t0), (_, t1) in zip(before.training, after.training) if t0 != t1]
        changes.append(f"changed train/eval mode of: {_short(flipped)}")
    if before.devices != after.devices:
        changes.append(f"moved model from {list(before.devices)} to {list(after.devices)}")
    if before.attributes != after.attributes:
        b_attrs = dict(before.attributes)
        new_attrs = sorted(
            {f"{m or '<root>'}.{a}" for m, attrs in after.attributes for a in set(attrs) - set(b_attrs.get(m, ()))}
        )
        if new_attrs:
            changes.append(f"added attributes: {_short(new_attrs)}")
    if before.global_hooks != after.global_hooks:
        changes.append(f"changed global module hooks: {dict(before.global_hooks)} -> {dict(after.global_hooks)}")
    return changes


def _short(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Silence stdout/stderr, Python-level and file-descriptor level.

    The yielded buffer holds everything that was printed once the block ends.
    """
    captured = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved_fds: list[tuple[int, int]] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            for fd in (1, 2):
                try:
                    saved_fds.append((fd, os.dup(fd)))
                    os.dup2(sink.fileno(), fd)
                except OSError:
                    pass
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                yield captured
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            for fd, saved in saved_fds:
                os.dup2(saved, fd)
                os.close(saved)
            sink.seek(0)
            captured.write(sink.read().decode(errors="replace"))


@dataclass(frozen=True)
class Outcome:
    """What came back from :func:`run_isolated`."""

    status: str  # "ok", "error", "timeout", "crash"
    value: Any = None
    message: str = ""
    died: str = ""  # a crash: how the process ended (exit_description)


def _child(fn: Callable[[], Any], conn: Any) -> None:
    # The parent's OpenMP pool does not survive fork(): using more than one
    # intra-op thread in the child can dead-lock, so the child runs on one.
    torch.set_num_threads(1)
    faulthandler.disable()  # a crash is reported by the parent, not dumped here
    try:
        value = fn()
        conn.send(("ok", value, ""))
    except BaseException as exc:  # noqa: BLE001 - everything becomes data
        conn.send(("error", None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"))
    finally:
        conn.close()


def run_isolated(fn: Callable[[], T], timeout: float | None) -> Outcome:
    """Run ``fn`` in a forked child; return its value, error, timeout or crash.

    Falls back to running inline (no timeout, no crash protection) where
    ``fork`` is unavailable.
    """
    if not can_fork():
        try:
            return Outcome("ok", fn())
        except Exception as exc:  # noqa: BLE001
            return Outcome("error", None, f"{type(exc).__name__}: {exc}")
    ctx = multiprocessing.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, child_conn), daemon=True)
    proc.start()
    child_conn.close()
    try:
        if parent_conn.poll(timeout):
            try:
                status, value, message = parent_conn.recv()
            except EOFError:
                status = None
            if status is not None:
                proc.join(5)
                return Outcome(status, value, message)
            proc.join(5)
            died = exit_description(proc.exitcode)
            return Outcome("crash", None, _exit_message(died), died)
        return Outcome("timeout", None, f"no result after {timeout:g} s; the count was stopped")
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        parent_conn.close()


def _exit_message(died: str) -> str:
    if died.startswith("signal"):
        return f"the counting process died with {died}"
    return f"the counting process exited with {died} before returning a result"
