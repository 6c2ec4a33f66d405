"""A model on the meta device that reads tensor values unless it is traced.

Meta tensors have shapes and no values, so a forward pass that reads one
(``.item()``, ``bool(t)``, ``.tolist()``) fails there. Some model code reads
values only outside a trace: transformers checks ``input_ids`` for padding
tokens when no ``attention_mask`` is given, and checks the attention mask to
see whether it can leave it out, unless ``torch.jit.is_tracing()``. Such a
model is counted on meta in the branch it takes when traced, and says so
(:func:`traced_branch_note`): :func:`flopaudit.reference.count` on meta, and
every count of a ``--meta`` audit.
"""

from __future__ import annotations

from collections.abc import Sequence

_VALUE_READS = ("meta tensors", "on meta", "data-dependent", "Cannot copy out of meta tensor", "item()")


def reads_values(exc: BaseException) -> bool:
    """Whether ``exc`` is a forward pass reading a tensor's value, which meta tensors do not have."""
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in _VALUE_READS)


def traced_branch_note(sites: Sequence[str]) -> str:
    """What every count of a model run on meta in its traced branch says (``sites``: where its code
    asked whether it is traced)."""
    return (f"on meta the model's code asks whether it is traced ({', '.join(sites)}) and otherwise reads tensor "
            "values, which meta tensors do not have: it was answered yes and counted in the branch it takes under "
            "a trace (transformers then leaves out its padding-token and attention-mask checks and makes its "
            "attention mask instead of skipping it)")
