"""The ``thop`` backend (pytorch-OpCounter, ``thop.profile``).

How thop counts (verified by probes, thop 0.1.1): it registers a forward hook
on every module whose *exact* type has a rule in ``thop.profile.register_hooks``
and runs the model once under ``torch.no_grad()`` in eval mode. Each hook adds
to a ``total_ops`` buffer a count for the whole batch; the rules count
multiply-accumulates for convolutions, linear layers and RNNs (bias excluded)
and per-element operation counts for norms, softmax, average pools and
upsampling. Modules without a rule count zero, as do all functional ops
(``torch.matmul``, ``@``, ``+``, ``F.*``) called inside ``forward``.

The total is a depth-first walk: a module with a rule contributes its own
``total_ops`` (its children are not visited); any other module contributes the
sum over its children (``nn.Sequential``/``nn.ModuleList`` always recurse).

``ultralytics-thop`` (which ``pip install ultralytics`` brings) installs its
own files as the same import package ``thop``, over thop's: where they are
there, this backend is ``not applicable`` and says so
(:class:`~flopaudit.adapters._shared_import.SharedImportBackend`), rather
than report another counter's numbers as thop's.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from typing import TYPE_CHECKING, Any, Mapping

from flopaudit.adapters._shared_import import SharedImportBackend
from flopaudit.adapters.base import Adapter, RawCount, count_instances
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES, MetaSupport
from flopaudit.errors import BackendFailure
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

BACKEND = SharedImportBackend(
    name="thop",
    adapter="ThopAdapter",
    description="thop.profile: forward hooks on modules with a rule; functional ops are not seen",
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="thop",
    distribution="thop",
    install="pip install thop",
    ruleset="flopaudit.reference.backend_rulesets.thop",
    meta=MetaSupport(True),
    order=10,
    known_divergences={
        "compiled-submodules": "thop fails: apply() registers a total_ops buffer on the wrapped module first, then on "
        "its torch.compile wrapper (OptimizedModule), which forwards attribute reads to it, so register_buffer finds "
        "the name taken (KeyError: attribute 'total_ops' already exists)",
        **dict.fromkeys(SCRIPT_MODULE_CASES, "thop fails: it registers total_ops/total_params buffers on every "
                        "module, which a ScriptModule refuses (RuntimeError: Can't add a new parameter after "
                        "ScriptModule construction)"),
    },
    # ultralytics-thop (2.x, a dependency of ultralytics) installs the same import package over thop's files;
    # it counts functional products too and estimates from smaller inputs: another counter, not thop.
    rivals=("thop", "ultralytics-thop"),
    files=("thop/__init__.py", "thop/profile.py"),
    assumed=True,
)

_MISSING_RULE = re.compile(r"\[WARN\] Cannot find rule for (<class '[^']*'>)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

LayerInfo = Mapping[str, tuple[float, float, Any]]
"""thop's ``ret_layer_info``: child name -> (ops, params, children's LayerInfo)."""


class ThopAdapter(Adapter):
    """``thop.profile(model, inputs=args)`` with the layer tree returned.

    Normalisation: thop's raw number is already per whole batch and labelled
    MACs, so ``macs`` is the raw total rounded to an integer (thop returns a
    float). NB: thop's "MACs" include its per-element counts for norms,
    softmax, average pools and upsampling; they are not removed here.

    ``per_module`` is the full tree thop walks: ``""`` is the root (equal to
    the total) and every module thop visits gets its inclusive count, i.e.
    its own ``total_ops`` if it has a rule, else the sum of its children.
    Children of a module with a rule are never visited and are absent.

    ``params`` is thop's own parameter number. NB: thop counts parameters
    only of modules with a rule, and never those of the root module itself,
    so a bare ``nn.Linear`` reports 0 parameters.

    ``unsupported`` maps the class name of each module type thop warned about
    ("Cannot find rule for ...") to the number of visited instances that do
    work of their own: leaves, and modules that hold parameters directly
    (e.g. ``nn.MultiheadAttention``). Containers whose children are counted
    are not listed.

    Keyword inputs are passed through :class:`FixedKwargs`; several
    positional inputs go straight to ``profile(model, inputs=args)``.
    """

    backend = BACKEND

    def options(self) -> dict[str, Any]:
        return {"custom_ops": {}, "verbose": False, "report_missing": True, "ret_layer_info": True}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        with warnings.catch_warnings():
            # NB: thop 0.1.1 imports distutils' LooseVersion at import time; the
            # DeprecationWarning is about thop's packaging, not about the count.
            warnings.simplefilter("ignore", DeprecationWarning)
            from thop import profile

        from flopaudit.adapters._binding import FixedKwargs, strip_wrapper

        target: nn.Module = FixedKwargs(model, inputs.kwargs) if inputs.kwargs else model
        opts = self.options()
        printed = io.StringIO()
        # thop prints "[INFO] Register ..." for every rule when report_missing
        # is on; keep its output here and pass on only the warnings.
        with contextlib.redirect_stdout(printed):
            try:
                total_ops, total_params, layers = profile(target, inputs=tuple(inputs.args), **opts)
            except KeyError as exc:
                taken = _attribute_taken(exc, model)
                if taken is None:
                    raise
                raise BackendFailure(taken) from exc

        tree = {"": total_ops, **_flatten_layer_info(layers)}
        if inputs.kwargs:
            tree = strip_wrapper(tree)
        warned = set(_MISSING_RULE.findall(_ANSI.sub("", printed.getvalue())))
        wrapper_type = repr(FixedKwargs)
        warned.discard(wrapper_type)
        messages = [
            line.strip()
            for line in _ANSI.sub("", printed.getvalue()).splitlines()
            if line.startswith("[WARN]") and wrapper_type not in line
        ]
        return RawCount(
            raw_total=total_ops,
            macs=int(round(total_ops)),
            params=int(round(total_params)),
            per_module={path: int(round(ops)) for path, ops in tree.items()},
            unsupported=count_instances((m for p, m in model.named_modules() if p in tree),
                                        lambda m: repr(type(m)) in warned),
            warnings=messages,
        )


def _attribute_taken(exc: KeyError, model: nn.Module) -> str | None:
    """thop registers buffers ``total_ops`` and ``total_params`` on every module, and
    ``register_buffer`` refuses a name the module already answers (a wrapper whose
    ``__getattr__`` passes names through to the module it wraps, as PEFT's do, answers it
    once the wrapped module has its buffer): which module, and how it answers; None where
    ``exc`` is not that."""
    from torch import nn

    from flopaudit.adapters._failures import frame_locals, module_named

    text = str(exc.args[0]) if exc.args else ""
    local = frame_locals(exc, "thop.profile", "add_hooks")
    name = next((n for n in ("total_ops", "total_params") if f"'{n}' already exists" in text), None)
    if local is None or name is None or not isinstance(local.get("m"), nn.Module):
        return None
    module = local["m"]
    how = ("through its __getattr__ (it passes names through to another module)"
           if name not in vars(module) and not hasattr(type(module), name) else "as an attribute of its own")
    return (f"thop registers buffers total_ops and total_params on every module, and {module_named(model, module)} "
            f"already answers {name} {how}: register_buffer refuses it ({exc.args[0]})")


def _flatten_layer_info(layers: LayerInfo, prefix: str = "") -> dict[str, float]:
    """thop's nested ``ret_layer_info`` as ``{dotted path: inclusive ops}``."""
    out: dict[str, float] = {}
    for name, (ops, _params, children) in layers.items():
        path = f"{prefix}.{name}" if prefix else name
        out[path] = ops
        out.update(_flatten_layer_info(children, path))
    return out


__all__ = ["ThopAdapter"]
