"""Python callables wrapped for the duration of a recorded pass.

``record(patch=...)`` replaces named callables (``"torch.nn.functional.relu"``,
``"torch.Tensor.matmul"``) by wrappers that report each call to the recorder,
as a counter that monkeypatches them does (ptflops' pytorch engine);
``torch.autograd.Function.apply`` is wrapped so that the recorder knows which
custom Function's ``forward`` is running. Everything is put back on exit.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from typing import Any, Iterator, Mapping, Protocol, Sequence

import torch


class CallWatcher(Protocol):
    """What the wrappers report to (the recorder)."""

    thread: int
    """The thread running the model: calls from other threads are not the model's."""
    functions: list[str]
    """Class names of the custom ``autograd.Function`` calls running now, innermost last."""
    patched_stack: list[str]
    """Paths of the patched calls running now, outermost first."""

    def patched_call(self, path: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> int:
        """Record a call of a patched callable; the index of its event, -1 if it is not the model's."""

    def patched_return(self, path: str, index: int, out: Any) -> None:
        """Complete the event at ``index`` with the call's output."""

    def note(self, text: str) -> None:
        """Add a note to the recording."""


def resolve(path: str) -> tuple[Any, str]:
    """``"torch.nn.functional.relu" -> (torch.nn.functional, "relu")``: the
    longest importable module prefix, then attributes."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:-1]:
            owner = getattr(owner, name)
        if not hasattr(owner, parts[-1]):
            raise AttributeError(f"cannot patch {path!r}: no attribute {parts[-1]!r}")
        return owner, parts[-1]
    raise ImportError(f"cannot patch {path!r}: no importable module prefix")


@contextlib.contextmanager
def patched(watcher: CallWatcher, paths: Sequence[str]) -> Iterator[None]:
    """Replace each callable in ``paths`` by a wrapper reporting its calls;
    put every one back (an inherited attribute is deleted again) on exit.
    A path that does not resolve in this torch version is skipped with a note
    (a backend cannot patch it either)."""
    saved: list[tuple[Any, str, bool, Any]] = []
    if paths:
        _import_operator_tables()
    try:
        for path in dict.fromkeys(paths):
            try:
                owner, attr = resolve(path)
            except (ImportError, AttributeError) as exc:
                watcher.note(str(exc))
                continue
            original = getattr(owner, attr)
            saved.append((owner, attr, attr in vars(owner), original))
            setattr(owner, attr, _wrapper(watcher, path, original))
        yield
    finally:
        for owner, attr, was_own, original in reversed(saved):
            if was_own:
                setattr(owner, attr, original)
            elif attr in vars(owner):
                delattr(owner, attr)


def _import_operator_tables() -> None:
    """Import the parts of torch that read torch's callables (``torch.ops.aten.<op>.<overload>``,
    ``torch.nn.functional.*``) into tables when they are first imported, before any is patched.

    # NB: torch imports Dynamo lazily, on the first call of anything wrapped in
    # ``torch._disable_dynamo`` (a dispatch mode's ``__torch_dispatch__``, such as the
    # liveness mode's). Dynamo imports ``torch.distributed.tensor``, which walks every
    # aten operator and reads its ``tags``, and keeps torch's functions in its own
    # tables. Run during a pass, that import would meet the wrappers where torch's
    # callables were: fail (a count's error in a fresh process), or keep a wrapper
    # in its tables for good.
    """
    import torch._dynamo  # noqa: F401


def _wrapper(watcher: CallWatcher, path: str, original: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        index = watcher.patched_call(path, args, kwargs)
        if index < 0:
            return original(*args, **kwargs)
        watcher.patched_stack.append(path)
        try:
            out = original(*args, **kwargs)
        finally:
            watcher.patched_stack.pop()
        watcher.patched_return(path, index, out)
        return out

    wrapper.__name__ = getattr(original, "__name__", path.rsplit(".", 1)[-1])
    wrapper.__qualname__ = getattr(original, "__qualname__", wrapper.__name__)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    return wrapper


@contextlib.contextmanager
def tracking_autograd_functions(watcher: CallWatcher) -> Iterator[None]:
    """Wrap ``torch.autograd.Function.apply`` for the pass so that the watcher
    knows which custom Function's ``forward`` is running (a JIT trace records
    such a call as one opaque node). Calls from other threads are not the
    model's and are not tracked. The original is put back on exit."""
    base = torch.autograd.Function
    original = base.__dict__["apply"]  # a classmethod (C or Python, by torch version)

    def tracked(cls: Any, *args: Any, **kwargs: Any) -> Any:
        apply = original.__get__(None, cls)
        if threading.get_ident() != watcher.thread:
            return apply(*args, **kwargs)
        watcher.functions.append(cls.__name__)
        try:
            return apply(*args, **kwargs)
        finally:
            watcher.functions.pop()

    tracked.__doc__ = original.__doc__
    base.apply = classmethod(tracked)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        base.apply = original  # type: ignore[method-assign]


__all__ = ["CallWatcher", "patched", "resolve", "tracking_autograd_functions"]
