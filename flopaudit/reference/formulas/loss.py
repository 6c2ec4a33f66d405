"""Loss functions that reach the dispatcher as one operator (a user's ``--loss``),
and their gradients; extra FLOPs per element of the prediction, no MACs.

``F.cross_entropy`` is ``log_softmax`` plus ``nll_loss_forward``; ``F.l1_loss``
decomposes into elementwise operators that their own formulas count, as does
the gradient of ``binary_cross_entropy_with_logits``.

* ``nll_loss``: one add per target (the picked log-probability, one multiply
  more with class weights); its gradient one write per target (as many).
* ``mse_loss``: 3 per element (subtract, square, sum); gradient 3 (subtract,
  scale, times the incoming gradient).
* ``smooth_l1_loss`` / ``huber_loss``: 4 per element (subtract, absolute
  value, compare, square or shift); gradient 3.
* ``binary_cross_entropy``: 6 per element (two logs, two multiplies, a
  subtract, a sum); gradient 5.
* ``binary_cross_entropy_with_logits``: 5 per element (log-sigmoid, ``1 -
  target``, a multiply, a subtract, a sum), 3 more with ``pos_weight``
  (``(pos_weight - 1) * target + 1`` and its multiply), 1 more with ``weight``.
* ``soft_margin_loss``: 4 per element (multiply, exp, log1p, sum); gradient 4.

# NB: the final divide of a ``mean`` reduction (one per loss) is not counted.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.registry import Category, Cost, OpCall, numel

#: (forward, gradient) FLOPs per element of the prediction.
PER_ELEMENT = {"mse_loss": (3, 3), "smooth_l1_loss": (4, 3), "huber_loss": (4, 3), "binary_cross_entropy": (6, 5),
               "soft_margin_loss": (4, 4)}


@on("nll_loss_forward", "nll_loss2d_forward", "nll_loss_backward", "nll_loss2d_backward")
def nll_loss(call: OpCall) -> Cost:
    """Negative log-likelihood and its gradient: one FLOP per target element
    (two with class ``weight``)."""
    per = 2 if call.get("weight") is not None else 1
    return Cost(0, per * numel(call.shape("target")), Category.REDUCTION)


@on(*(name + suffix for name in PER_ELEMENT for suffix in ("", "_backward")))
def pointwise_loss(call: OpCall) -> Cost:
    """Pointwise regression and binary losses and their gradients: see :data:`PER_ELEMENT`."""
    name = call.op.split(".")[1]
    forward, backward = PER_ELEMENT[name.removesuffix("_backward")]
    per = backward if name.endswith("_backward") else forward
    return Cost(0, per * numel(call.shape("self")), Category.REDUCTION)


@on("binary_cross_entropy_with_logits")
def bce_with_logits(call: OpCall) -> Cost:
    """Binary cross-entropy on logits: 5 FLOPs per element, 3 more with
    ``pos_weight``, 1 more with ``weight`` (its gradient is elementwise operators)."""
    per = 5 + (3 if call.get("pos_weight") is not None else 0) + (1 if call.get("weight") is not None else 0)
    return Cost(0, per * numel(call.shape("self")), Category.REDUCTION)
