"""Running an audit's work away from the caller: supervised workers, Dask, the meta device.

* :mod:`~flopaudit.execution.refs`: :class:`CaseRef`, a picklable name for
  a model case that any process can rebuild identically (seeded);
* :mod:`~flopaudit.execution.protocol`: what the supervisor asks a worker
  to do and what the worker answers, phase by phase;
* :mod:`~flopaudit.execution.supervisor`: warm workers forked from a fork
  server, each phase under a deadline, every fault a status;
* :mod:`~flopaudit.execution.worker`: a worker's loop (output captured,
  memory capped per phase);
* :mod:`~flopaudit.execution.work`: building, running and counting a case
  (the only module here that imports torch);
* :mod:`~flopaudit.execution.manifest`: what a worker's counts depended on,
  the result cache's proof that nothing changed;
* :mod:`~flopaudit.execution.dask`: counting on a ``concurrent.futures``
  executor such as a Dask cluster's;
* :mod:`~flopaudit.execution.memory`: the address-space guard of a phase;
* :mod:`~flopaudit.execution.meta`: building on the meta device;
* :mod:`~flopaudit.execution.failures`: results for counts that produced nothing;
* :mod:`~flopaudit.execution.torch_state`: torch's process-wide settings, put
  back before each case a process builds.
"""

from __future__ import annotations

from flopaudit.execution.refs import CaseRef

__all__ = ["CaseRef"]
