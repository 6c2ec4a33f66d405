"""From FLOPs to time: measured latency, memory traffic and the machine's ceilings.

* :mod:`flopaudit.measure.records` (no torch): :class:`~flopaudit.measure.records.ModelCost`,
  :class:`~flopaudit.measure.records.LayerCost` and :class:`~flopaudit.measure.records.Ceilings`,
  integer records (nanoseconds, bytes, FLOPs) that travel from a worker and are written to
  ``results.json``;
* :mod:`flopaudit.measure.matrix` (no torch): the decision matrix across models and its
  user-weighted score;
* :mod:`flopaudit.measure.cost` (torch; runs where user code runs): measuring one model:
  :func:`~flopaudit.measure.cost.measure_cost`, built on :mod:`~flopaudit.measure.timing`
  (latency, per-layer times), :mod:`~flopaudit.measure.ceilings` (peak FLOP/s, bandwidth) and
  :mod:`~flopaudit.measure.memory` (peak memory).

Importing this package imports no torch.
"""
