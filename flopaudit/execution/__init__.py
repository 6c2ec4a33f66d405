"""Running an audit's counts elsewhere: worker processes, a Dask cluster, the meta device.

* :mod:`~flopaudit.execution.refs`: :class:`CaseRef`, a picklable name for
  a model case that any process can rebuild identically (seeded);
* :mod:`~flopaudit.execution.tasks`: one (case, backend) count as a
  picklable task and the worker function that runs it;
* :mod:`~flopaudit.execution.pool`: the ``concurrent.futures`` executors
  (process pool, Dask) and the loop that collects their results;
* :mod:`~flopaudit.execution.memory`: the address-space guard of a count;
* :mod:`~flopaudit.execution.meta`: building on the meta device and which
  backends may count there.
"""

from __future__ import annotations

from flopaudit.execution.refs import CaseRef

__all__ = ["CaseRef"]
