"""The rules of thumb for a training step as rulesets: their count, and how it
differs from what the reference counted, cause by cause.

A rule of thumb does not price operators; it is a closed form
(:mod:`flopaudit.rules_of_thumb`). Each ruleset here is a closed-form
counter (:data:`~flopaudit.reference.rulesets.CLOSED_FORMS`) that gives the
rule's number and books ``rule - reference`` (whole-batch MACs) to causes,
with the layers each cause applies to, from a recorded training step:

* **what the rule assumes of the backward** (all three: backward = 2 x
  forward). Autograd computes, for each forward operator, only the
  gradients it needs (:attr:`OpEvent.forward_event` links each backward
  operator to it): a product with a frozen parameter has no weight gradient
  ("frozen parameters"), a product whose input needs no gradient (the first
  layer, or one after only frozen layers) no input gradient ("input needs
  no gradient"), and some kernels do more than two products (the attention
  kernels recompute the scores: 5 products where the forward has 2); the
  recomputation of activation checkpointing, the optimizer step and the loss
  are not in any rule;
* **what the rule assumes of the forward**: 3x forward none; 6·N·D prices
  every non-embedding parameter once per token (so no attention products, no
  output layer tied to the embedding, but biases and norm weights at the
  price of a weight), Chinchilla's appendix F prices the token embedding as
  a one-hot matrix product and the softmax at 3 FLOPs per logit, and every
  other product by the model's dimensions.

What the causes do not cover is booked as a residual cause of its own by
:func:`~flopaudit.reference.pricing.price`; on the zoo there is none.
# NB: with reentrant activation checkpointing (``use_reentrant=True``) the
# forward runs without autograd and the backward differentiates the
# recomputation: its forward operators show as needing no gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from flopaudit.errors import NotApplicable
from flopaudit.records import CauseKind, RuleContribution
from flopaudit.reference.events import ModuleCall, OpEvent
from flopaudit.reference.registry import CONTRACTION_CATEGORIES, Category
from flopaudit.reference.rulesets import Ruleset, closed_form, numel, register_ruleset
from flopaudit.rules_of_thumb import ModelFacts, chinchilla_flops, chinchilla_forward_terms, kaplan_flops

#: Causes, as the report names them.
FROZEN = "frozen parameters: no weight gradient (the rule assumes one)"
NO_INPUT_GRAD = ("the input needs no gradient (a first layer, or only frozen layers before it): "
                 "no input gradient (the rule assumes one)")
RECOMPUTE = "activation checkpointing recomputes forward work in the backward (not in the rule)"
OPTIMIZER = "the optimizer step (not in the rule)"
LOSS = "the loss and its gradient (not in the rule)"
UNLINKED = "backward work no forward operator made (gradient accumulation)"
ATTENTION_BACKWARD = "the attention kernel's backward recomputes the scores: 5 products where the forward has 2"
ATTENTION_PRODUCTS = "attention logits and weighted values (products of activations): not in 6·N·D"
TIED_OUTPUT = "output layer tied to the embedding: its weights are not in N (6·N·D)"
BIASES = "biases priced as weights: 6 FLOPs per token each (6·N·D)"
NORMS = "norm and other non-matmul parameters priced as weights: 6 FLOPs per token each (6·N·D)"
TOKEN_USE = "parameters applied to another number of tokens than the input's (6·N·D applies each once per token)"
EMBEDDING_MATMUL = "token embedding lookup priced as a one-hot matrix product (Chinchilla appendix F)"
SOFTMAX = "softmax priced at 3 FLOPs per logit (Chinchilla appendix F)"
UNUSED = "the output does not reach the loss: no backward at all (the rule assumes one)"
SHAPES = ("the model's products differ from the closed form's (e.g. a gated feed-forward's third matrix, "
          "grouped key/value heads, no output layer)")

#: Overload packets whose gradients are one product per operand that needs one.
_PRODUCTS = frozenset({"aten.mm", "aten.addmm", "aten.bmm", "aten.baddbmm", "aten.convolution", "aten._convolution",
                       "aten.linear", "aten.matmul", "aten.addbmm"})

_PARAMETER = "WwEe"


@dataclass(frozen=True)
class ClosedFormCount:
    """What a closed-form counter gives: ``total`` in the ruleset's unit (what the
    backend reports), ``macs`` whole-batch MACs, and ``parts`` whose MACs add up to
    ``macs`` minus the recording's canonical MACs."""

    total: int
    macs: int
    parts: tuple[RuleContribution, ...]
    per_module: dict[str, int] = field(default_factory=dict)


class Book:
    """Causes being booked: reason -> MACs per module path."""

    def __init__(self) -> None:
        self.by_reason: dict[tuple[CauseKind, str], dict[str, int]] = {}

    def add(self, reason: str, macs: int, path: str, kind: CauseKind = CauseKind.RULE) -> None:
        if macs:
            where = self.by_reason.setdefault((kind, reason), {})
            where[path] = where.get(path, 0) + macs

    def parts(self) -> tuple[RuleContribution, ...]:
        out = []
        for (kind, reason), layers in self.by_reason.items():
            total = sum(layers.values())
            if not total:
                continue
            listed = sorted(((p, v) for p, v in layers.items() if v), key=lambda x: (-abs(x[1]), x[0]))
            out.append(RuleContribution(reason, kind, total, tuple(listed[:8]), len(listed)))
        return tuple(out)


def _packet(op: str) -> str:
    parts = op.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else op


def _operand_letters(e: OpEvent) -> str:
    """The letters of the two multiplied operands of a product (its last two tensors of 2 or more dims)."""
    picked = [letter for letter, shape in zip(e.operands, e.input_shapes) if len(shape) >= 2]
    return "".join(picked[-2:])


def book_backward(events: Sequence[OpEvent], book: Book, factor: int = 2) -> None:
    """Book ``factor x forward - what autograd did`` for every forward operator, and the
    work outside any rule (recomputation, optimizer, loss, unlinked gradients)."""
    backward: dict[int, int] = {}
    for e in events:
        if e.phase == "backward" and e.macs:
            if e.forward_event >= 0:
                backward[e.forward_event] = backward.get(e.forward_event, 0) + e.macs
            else:
                book.add(UNLINKED, -e.macs, e.module_path)
    for j, e in enumerate(events):
        if e.phase == "recompute":
            book.add(RECOMPUTE, -e.macs, e.module_path)
        elif e.phase == "optimizer":
            book.add(OPTIMIZER, -e.macs, e.module_path)
        elif e.phase == "loss":
            book.add(LOSS, -e.macs - backward.get(j, 0), e.module_path)
        elif e.phase == "forward":
            _book_forward_operator(e, backward.get(j, 0), book, factor)
    for j, b in backward.items():  # gradients of recomputed operators (reentrant checkpointing)
        if events[j].phase == "recompute":
            book.add(RECOMPUTE, -b, events[j].module_path)


def _book_forward_operator(e: OpEvent, actual: int, book: Book, factor: int) -> None:
    """Book ``factor x e.macs - actual`` (the MACs of ``e``'s gradients) by cause."""
    expected = factor * e.macs
    if expected == actual:
        return
    path, packet = e.module_path, _packet(e.op)
    if e.category in CONTRACTION_CATEGORIES and packet in _PRODUCTS and e.operands:
        letters = _operand_letters(e)
        for letter in letters:  # a gradient autograd does not need: one product less
            if letter.islower():
                book.add(FROZEN if letter in _PARAMETER else NO_INPUT_GRAD, e.macs, path)
        ideal = sum(1 for letter in letters if letter.isupper()) * e.macs
        if ideal and not actual:
            book.add(UNUSED, ideal, path)
        else:
            book.add(f"{packet}'s backward is not one product per gradient", ideal - actual, path)
        book.add(f"backward priced at {factor} x forward where a product has 2 operands", (factor - 2) * e.macs,
                 path)
    elif not actual:
        book.add(UNUSED if any(c.isupper() for c in e.operands) else NO_INPUT_GRAD, expected, path)
    elif e.category is Category.ATTENTION and actual > expected:
        book.add(ATTENTION_BACKWARD, expected - actual, path)
    elif not e.macs:
        book.add(f"{packet}'s backward has products its forward has not", -actual, path)
    else:
        book.add(f"{packet}'s backward is not {factor} x its forward", expected - actual, path)


# -- 3x forward -------------------------------------------------------------------

@closed_form("rule-3x-forward")
def three_times_forward(events: Sequence[OpEvent], calls: Sequence[ModuleCall], facts: object) -> ClosedFormCount:
    """3 x the canonical MACs of the step's forward operators."""
    forward = sum(e.macs for e in events if e.phase == "forward")
    book = Book()
    book_backward(events, book)
    return ClosedFormCount(3 * forward, 3 * forward, book.parts(), {"": 3 * forward})


# -- 6 N D --------------------------------------------------------------------------

def parameter_uses(e: OpEvent) -> tuple[int, int, int]:
    """``(weights, biases, others)``: how many parameter-element uses 6·N·D prices in
    forward operator ``e`` (non-embedding parameters only): a product's weight once
    per product (its MACs), a bias and a norm or other pointwise parameter once per
    output element."""
    letters = e.operands
    if not letters or not any(c in "Ww" for c in letters):
        return 0, 0, 0
    out = numel(e.output_shapes[0]) if e.output_shapes else 0
    if e.category in CONTRACTION_CATEGORIES:
        weights = e.macs if any(c in "Ww" and len(s) >= 2 for c, s in zip(letters, e.input_shapes)) else 0
        biases = sum(out for c, s in zip(letters, e.input_shapes) if c in "Ww" and len(s) < 2)
        return weights, biases, 0
    if e.category in (Category.ZERO_COST, Category.DATA_MOVEMENT, Category.EMBEDDING) or not e.extra_flops:
        return 0, 0, 0
    return 0, 0, sum(out for c in letters if c in "Ww")


@closed_form("rule-6nd")
def kaplan(events: Sequence[OpEvent], calls: Sequence[ModuleCall], facts: object) -> ClosedFormCount:
    """6·N·D FLOPs; the forward by parameter uses, times 3 (see the module docstring)."""
    if not isinstance(facts, ModelFacts):
        raise NotApplicable("6·N·D needs the model's parameters and token ids")
    flops = kaplan_flops(facts)
    macs = flops // 2
    book = Book()
    book_backward(events, book)
    priced = 0
    for e in events:
        if e.phase != "forward":
            continue
        weights, biases, others = parameter_uses(e)
        priced += weights + biases + others
        if e.category in CONTRACTION_CATEGORIES and not weights:
            tied = any(c in "Ee" for c in e.operands)
            book.add(TIED_OUTPUT if tied else ATTENTION_PRODUCTS, -3 * e.macs, e.module_path)
        book.add(BIASES, 3 * biases, e.module_path)
        book.add(NORMS, 3 * others, e.module_path)
    book.add(TOKEN_USE, macs - 3 * priced, "")
    return ClosedFormCount(flops, macs, book.parts(), {"": macs})


# -- Chinchilla appendix F ----------------------------------------------------------------

@closed_form("rule-chinchilla")
def chinchilla(events: Sequence[OpEvent], calls: Sequence[ModuleCall], facts: object) -> ClosedFormCount:
    """Appendix F's FLOPs for the step (3 x forward); the forward matched to the recorded
    operators: the token embedding as a one-hot product, the softmax at 3 FLOPs per logit,
    every product as counted, the rest to the model's shapes (see the module docstring)."""
    if not isinstance(facts, ModelFacts):
        raise NotApplicable("the Chinchilla closed form needs the model's config and token ids")
    flops = chinchilla_flops(facts)
    macs = flops // 2
    assert facts.dims is not None and facts.seq_len is not None
    book = Book()
    book_backward(events, book)
    embedding = 0
    for e in events:
        if e.phase == "forward" and e.category is Category.EMBEDDING and "x" in e.operands.lower() \
                and len(e.input_shapes) >= 2:
            weight, indices = e.input_shapes[0], e.input_shapes[1]
            one_hot = numel(indices) * numel(weight)
            embedding += one_hot
            book.add(EMBEDDING_MATMUL, 3 * one_hot, e.module_path)
    softmax = 3 * facts.sequences * chinchilla_forward_terms(facts.dims, facts.seq_len)["softmax"] // 2
    book.add(SOFTMAX, softmax, "")
    forward = sum(e.macs for e in events if e.phase == "forward")
    booked = 3 * forward + 3 * embedding + softmax
    book.add(SHAPES, macs - booked, "")
    return ClosedFormCount(flops, macs, book.parts(), {"": macs})


def _rule(name: str, unit: str, description: str) -> Ruleset:
    return register_ruleset(Ruleset(name=name, unit=unit, description=description,  # type: ignore[arg-type]
                                    closed_form=name, grad_enabled=True))


RULE_3X_FORWARD = _rule("rule-3x-forward", "MAC", "Rule of thumb: a training step = 3 x the forward pass's "
                        "canonical MACs (backward = 2 x forward).")
RULE_6ND = _rule("rule-6nd", "FLOP", "Rule of thumb (Kaplan et al. 2020): a training step = 6 x non-embedding "
                 "parameters x tokens FLOPs.")
RULE_CHINCHILLA = _rule("rule-chinchilla", "FLOP", "Rule of thumb (Hoffmann et al. 2022, appendix F): 3 x the "
                        "closed-form forward FLOPs of a transformer (embeddings, attention logits and softmax "
                        "included) from its dimensions.")


def times_forward(base: Ruleset, factor: int) -> Callable[[Sequence[OpEvent], Sequence[ModuleCall], object],
                                                           ClosedFormCount]:
    """A closed-form counter for a backend that counts the forward pass its own way
    (``base``) and multiplies it by ``factor`` for a training step (calflops'
    ``include_backPropagation``, DeepSpeed's multiple): the forward's causes times
    ``factor``, then what the multiple assumes of the backward. Register it with
    :func:`~flopaudit.reference.rulesets.closed_form` under the name of a ruleset
    ``<backend>:train`` that keeps ``base``'s ``patched_functions``, ``module_hooks``
    and ``grad_enabled`` (the step is recorded the way the backend runs its forward)."""
    from flopaudit.reference.pricing import predict

    def count(events: Sequence[OpEvent], calls: Sequence[ModuleCall], facts: object) -> ClosedFormCount:
        forward = predict(events, calls, base, phase="forward", layers_kept=None)  # (every layer: booked by layer)
        book = Book()
        for c in forward.contributions:
            for path, v in c.layers:
                book.add(c.rule, factor * v, path, c.kind)
            book.add(c.rule, factor * (c.macs - sum(v for _, v in c.layers)), "", c.kind)  # (what no layer holds)
        book_backward(events, book, factor - 1)
        macs = factor * forward.macs
        total = macs * (2 if base.unit == "FLOP" else 1)
        return ClosedFormCount(total, macs, book.parts(), {"": macs})

    return count


def describe(parts: Iterable[RuleContribution]) -> str:
    """One line per cause (for tests and debugging)."""
    return "\n".join(f"{c.kind}: {c.rule}: {c.macs:+d}" for c in parts)


__all__ = ["ATTENTION_BACKWARD", "ClosedFormCount", "FROZEN", "NO_INPUT_GRAD", "RECOMPUTE", "RULE_3X_FORWARD",
           "RULE_6ND", "RULE_CHINCHILLA", "book_backward", "chinchilla", "kaplan", "parameter_uses",
           "three_times_forward", "times_forward"]
