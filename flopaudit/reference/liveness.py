"""Which recorded operators a JIT trace keeps: work whose result reaches the output.

``torch.jit.trace`` (fvcore's ``FlopCountAnalysis``) records every operator
of a forward pass, then removes the nodes whose results are never used: work
whose result the forward discards (``_ = self.head(x)``), and everything
when the output holds no tensor (``None``, an int, an object that is not a
tuple, list or dict). What writes into a parameter, a buffer or an input is
kept (a side effect). A counter reading the trace never sees the rest.

:class:`LivenessMode` is a ``TorchDispatchMode`` entered *outside* the
reference's recording mode for one pass: it sees the same operators in the
same order (plus the few the recorder runs for itself) and notes, for each,
the storages it reads and writes. :func:`dead_events` then walks them
backwards from the output's storages and marks the recorded events whose
operator fed nothing that survives; :func:`without_dead_work` books what a
ruleset priced on those events as one named cause of its prediction.

Storages are identified by their ``StorageImpl`` (a storage freed and its
address reused is a new one). # NB: liveness is by storage, not by element:
work written into part of a storage that is read later counts as used, as a
trace that cannot see element ranges would keep it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.multiprocessing.reductions import StorageWeakRef
from torch.nn.modules.module import register_module_forward_hook
from torch.utils._python_dispatch import TorchDispatchMode

from flopaudit.inputs import iter_tensors
from flopaudit.isolation import is_uninitialized
from flopaudit.records import CauseKind, RulesetPrediction
from flopaudit.reference.engine import PATCHED_CALL_PREFIX, OpEvent
from flopaudit.reference.operators import ArgumentPlace, argument, written_args
from flopaudit.reference.pricing import with_cause
from flopaudit.reference.rulesets import EVENT_COUNTERS, Ruleset
from flopaudit.reference.tensors import watching_tensor_data

REASON = ("JIT trace keeps only work whose result reaches the output: work the forward discards, or all of it "
          "when the output holds no tensor, is not counted")
"""How the report names the cause."""

_MODULE_RULE_PREFIX = "module_rule:"


class _Unknown(Exception):
    """A tensor whose storage cannot be identified (nested, sparse...): liveness unknown."""


class LivenessMode(TorchDispatchMode):
    """Notes each operator's read and written storages, and the model's output.

    Enter it around the reference's recording of ``model`` (outside it, so
    that every operator the recorder lets run reaches this mode). Parameters,
    buffers and the tensors in ``inputs`` are the trace's inputs: a write to
    them is kept.
    """

    def __init__(self, model: nn.Module, inputs: Iterable[torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self._refs: dict[int, tuple[StorageWeakRef, int]] = {}
        self._next = 0
        self.ops: list[tuple[str, frozenset[int], frozenset[int], frozenset[int]]] = []
        """Per operator: name, storages read, storages written (outputs, views
        included), storages written in place (arguments the schema marks written)."""
        self.outputs: frozenset[int] | None = None
        self.failed = False
        self.kept: frozenset[int] = frozenset()
        self._data_watch: Any = None
        self._data_aliases: dict[int, torch.Tensor] = {}
        """The tensors ``Tensor.data`` gave during the pass, by ``id`` (held: their ids stay theirs)."""
        self._graph_inputs: dict[int, int] = {}
        """``id(tensor)`` -> storage id, of each parameter, buffer and input as the pass starts."""
        self._held = [t for t in (*model.parameters(), *model.buffers(), *inputs) if not is_uninitialized(t)]
        """Those tensors (no storage yet: left out), held so that their ids stay theirs."""
        self._written_places: dict[Any, tuple[tuple[ArgumentPlace, ...], tuple[ArgumentPlace, ...]]] = {}
        """Operator -> the places of the arguments its schema marks written and, for a batch norm, of
        ``training`` and the running statistics, each read from the schema once per pass (:meth:`_places`)."""
        try:
            for t in self._held:
                self._graph_inputs.setdefault(id(t), self._sid(t))
        except _Unknown:
            self._graph_inputs, self.failed = {}, True
        self.kept = frozenset(self._graph_inputs.values())
        self._hook: Any = None

    def _sid(self, t: torch.Tensor) -> int:
        """The id of ``t``'s storage; for a parameter, buffer or input, the one it had as the pass
        started: a trace reads its graph input there, even after ``param.data = new`` gave the
        tensor another storage (a forward that re-fuses its weights so discards that work)."""
        known_input = self._graph_inputs.get(id(t)) if self._graph_inputs else None
        if known_input is not None:
            return known_input
        sid = self._storage_sid(t)
        if sid in self.kept and self._data_aliases.get(id(t)) is t:
            # ``param.data`` of a graph input: a trace holds it as a constant, not as the input, so a
            # write through it is no side effect (``self.loc.data.copy_(...)``, a data-dependent
            # initialisation, is dropped) and a read of it reads no input.
            return -sid
        return sid

    def _storage_sid(self, t: torch.Tensor) -> int:
        """The id of the storage ``t`` has now."""
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
            raise _Unknown from exc
        ref = StorageWeakRef(storage)
        known = self._refs.get(ref.cdata)
        if known is not None and not known[0].expired():
            return known[1]
        self._next += 1
        self._refs[ref.cdata] = (ref, self._next)
        return self._next

    def _moved_inputs(self, obj: Any) -> dict[int, int]:
        """For each parameter, buffer or input in ``obj`` given another storage since the pass
        began (``param.data = new``): the id of its storage now -> the one it had then. A trace
        reads such a tensor as its graph input, and views of it (``weight.t()`` in ``F.linear``)
        as views of that input."""
        if not self._graph_inputs:
            return {}
        moved = {}
        for t in iter_tensors(obj):
            then = self._graph_inputs.get(id(t))
            if then is not None:
                now = self._storage_sid(t)
                if now != then:
                    moved[now] = then
        return moved

    def _sids(self, obj: Any) -> frozenset[int]:
        return frozenset(self._sid(t) for t in iter_tensors(obj))

    def __enter__(self) -> LivenessMode:
        model = self.model

        def output_hook(module: nn.Module, args: Any, output: Any) -> None:
            if module is model:
                try:
                    self.outputs = self._sids(output)
                except _Unknown:
                    self.failed = True

        self._hook = register_module_forward_hook(output_hook)
        aliases = self._data_aliases

        def given(alias: torch.Tensor) -> None:
            aliases[id(alias)] = alias

        self._data_watch = watching_tensor_data(given=given)
        self._data_watch.__enter__()
        try:
            return super().__enter__()  # type: ignore[return-value]
        except BaseException:
            self._data_watch.__exit__(None, None, None)
            raise

    def __exit__(self, *exc: Any) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._data_watch is not None:
            self._data_watch.__exit__(None, None, None)
            self._data_watch = None
        super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.failed:
            return out
        try:
            mutated: set[int] = set()
            written, batch_norm = self._places(func)
            for place in written:
                mutated |= self._sids(argument(place, args, kwargs))
            if batch_norm and argument(batch_norm[0], args, kwargs) is True:
                # ``native_batch_norm`` updates its running statistics without saying so in its
                # schema; the JIT's alias analysis knows (``analyzeBatchNorm``) and keeps it.
                mutated |= self._sids([argument(place, args, kwargs) for place in batch_norm[1:]])
            given = list(iter_tensors((args, kwargs)))
            read = frozenset([self._sid(t) for t in given])
            moved = self._moved_inputs(given)
            if moved:  # a view of a graph input that has another storage now is a view of the graph input
                for t in iter_tensors(out):
                    then = moved.get(self._storage_sid(t))
                    if then is not None:
                        self._graph_inputs[id(t)] = then
                        self._held.append(t)  # (so that its id stays its own)
            self.ops.append((str(func), read, self._sids(out) | mutated, frozenset(mutated)))
        except _Unknown:
            self.failed = True
        return out

    def _places(self, func: Any) -> tuple[tuple[ArgumentPlace, ...], tuple[ArgumentPlace, ...]]:
        """Where ``func``'s written arguments are, and for an operator taking ``training`` and
        ``running_mean``, those and ``running_var`` (see :attr:`_written_places`)."""
        known = self._written_places.get(func)
        if known is None:
            schema = getattr(func, "_schema", None)
            arguments = list(schema.arguments) if schema is not None else []
            places = {a.name: ArgumentPlace(i, a.name) for i, a in enumerate(arguments)}
            written = written_args(arguments)
            batch_norm = tuple(places[n] for n in ("training", "running_mean", "running_var") if n in places) if (
                "training" in places and "running_mean" in places) else ()
            known = self._written_places[func] = (written, batch_norm)
        return known

    def live(self) -> list[bool] | None:
        """For each operator seen, whether a trace keeps it (None: unknown)."""
        if self.failed or self.outputs is None:
            return None
        live_storages = set(self.outputs)
        out: list[bool] = []
        for _name, read, written, mutated in reversed(self.ops):
            keep = bool(written & live_storages) or bool(mutated & self.kept)
            if keep:
                live_storages |= read
            out.append(keep)
        out.reverse()
        return out


def dead_events(events: Sequence[OpEvent], mode: LivenessMode) -> frozenset[int] | None:
    """Indices of ``events`` (recorded under ``mode``) whose work a JIT trace drops.

    Each operator event is matched, in order, to the next operator ``mode``
    saw with the same name (the recorder's own operators fall between); a
    ``py:`` call is dead when every operator with a cost recorded inside it
    is (the views it takes of live tensors are not its work).
    Module-rule events stand for work the recorder ran outside its mode and
    count as live. None when the two cannot be matched (liveness unknown).
    """
    live = mode.live()
    if live is None:
        return None
    names = [op[0] for op in mode.ops]
    dead: set[int] = set()
    j = 0
    for i, e in enumerate(events):
        if e.op.startswith((PATCHED_CALL_PREFIX, _MODULE_RULE_PREFIX)):
            continue
        while j < len(names) and names[j] != e.op:
            j += 1
        if j == len(names):
            return None
        if not live[j]:
            dead.add(i)
        j += 1
    for i, e in enumerate(events):
        if e.op.startswith(PATCHED_CALL_PREFIX):
            costed = [k for k in _inner(events, i) if events[k].macs or events[k].extra_flops or not events[k].supported]
            if costed and all(k in dead for k in costed):
                dead.add(i)
    return frozenset(dead)


def _inner(events: Sequence[OpEvent], index: int) -> list[int]:
    """Indices of the operator events recorded inside the ``py:`` call at ``index``."""
    call = events[index]
    path, depth = call.op[len(PATCHED_CALL_PREFIX):], len(call.patched_stack)
    out = []
    for k in range(index + 1, len(events)):
        stack = events[k].patched_stack
        if len(stack) <= depth or stack[depth] != path:
            break
        if not events[k].op.startswith(PATCHED_CALL_PREFIX):
            out.append(k)
    return out


def without_dead_work(prediction: RulesetPrediction, events: Sequence[OpEvent], dead: Iterable[int],
                      ruleset: Ruleset) -> RulesetPrediction:
    """``prediction`` less what ``ruleset`` priced on the ``dead`` events,
    booked as one cause (:data:`REASON`) with the layers it falls on."""
    amounts = []
    event_rule = ruleset.rule_finder()
    for i in sorted(dead):
        e = events[i]
        if ruleset.foreign(e) or any(p in ruleset.trace_consumed for p in e.patched_stack):
            continue
        rule = event_rule(e)
        priced = EVENT_COUNTERS[rule.count if rule else ruleset.default](e)
        amounts.append((e.module_path, e.module_stack, -(priced // 2 if ruleset.unit == "FLOP" else priced)))
    return with_cause(prediction, REASON, CauseKind.RULE, amounts)


__all__ = ["LivenessMode", "REASON", "dead_events", "without_dead_work"]
