"""DeepSpeed's flops profiler (``deepspeed.profiling.flops_profiler.get_model_profile``), on CPU.

What DeepSpeed 0.19's profiler counts (``deepspeed/profiling/flops_profiler/
profiler.py``; verified by probes on torch 2.14, CPU accelerator):

* ``get_model_profile`` puts the model in eval mode, runs ``warm_up``
  forward passes unprofiled, then one with autograd on while the
  ``torch.nn.functional`` functions (``linear``, convolutions, transposed
  convolutions, activations, norms, pools, ``interpolate``/``upsample``,
  ``softmax``, ``embedding``, ``scaled_dot_product_attention``), the tensor
  functions ``torch.matmul``/``Tensor.matmul``/``Tensor.__matmul__`` (so
  ``@``), ``torch.mm``/``Tensor.mm``, ``torch.bmm``/``Tensor.bmm``,
  ``torch.addmm``/``Tensor.addmm``, ``torch.baddbmm``, ``torch.mul``/
  ``Tensor.mul``, ``torch.add``/``Tensor.add``, ``torch.einsum`` and
  ``einops.einsum`` are wrapped to record (FLOPs, MACs) per call; ``*`` and
  ``+`` are not.
* MACs: ``linear`` ``numel(x) * out``; convolutions ``N * prod(out spatial)
  * Cin * (Cout/g) * K`` (transposed: by the *input* size); ``matmul``/
  ``mm``/``bmm``/``@`` ``prod(a.shape) * b.shape[-1]``; ``addmm``/
  ``baddbmm`` ``prod(mat1.shape) * mat2.shape[-1]``; SDPA ``prod(q.shape) *
  Lk + prod(q.shape[:-1]) * Lk * Dv``. Everything else FLOPs only; RNN
  modules by a module hook in FLOPs only.
* Each wrapper calls its rule with the call's own arguments, and SDPA's
  rule names them ``q, k, v``: a call giving ``query=``, ``key=`` or
  ``value=`` by keyword (diffusers' attention dispatch does) fails with a
  TypeError, named as such in the cell.
* A pre-hook/hook pair on each module collects the calls made inside it;
  the total is the sum of every module's ``__macs__`` over ``modules()``
  (each module once, a shared one included).
* Parameters: ``sum(p.numel() for p in model.parameters())`` (each tensor
  once, frozen ones included).

DeepSpeed is installed from its source distribution (it ships no wheel); on
a machine without a GPU it uses its CPU accelerator. The adapter sets
``DS_ACCELERATOR=cpu`` unless the environment chooses one, so the profile
runs on CPU whatever the machine has.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES, Backend, MetaSupport
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs


BACKEND = Backend(
    name="deepspeed",
    adapter="DeepSpeedAdapter",
    description=(
        "DeepSpeed flops profiler (CPU): patched torch.nn.functional/tensor calls collected by module hooks"
    ),
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="deepspeed",
    distribution="deepspeed",
    install="pip install deepspeed",
    ruleset="flopaudit.reference.backend_rulesets.deepspeed",
    meta=MetaSupport(False, "DeepSpeed's profiler counts a Linear layer twice on meta tensors (probed: linear-2d "
                     "reads 16384 MACs on meta, 8192 on CPU)"),
    known_divergences={
        "params-lazy": "DeepSpeed's profiler fails: it counts parameters before the forward, when a lazy "
        "module's are still uninitialised (ValueError); a crash is not predicted",
        "conv2d-unbatched": "DeepSpeed's profiler fails: its conv formula asserts weight.shape[1] * groups == "
        "input.shape[1], false for an unbatched (C, H, W) input; a crash is not predicted",
        "lazy-linear": "DeepSpeed's profiler fails: it counts parameters before the forward, when the LazyLinear's "
        "are still uninitialised (ValueError); a crash is not predicted",
        "lstm-packed-sequence": "DeepSpeed's profiler fails: its RNN hook reads input.shape of a PackedSequence "
        "(AttributeError)",
        **dict.fromkeys(SCRIPT_MODULE_CASES, "DeepSpeed's profiler fails: its forward pre-hooks cannot be "
                        "registered on a ScriptModule"),
    },
    order=120,
)

class DeepSpeedAdapter(Adapter):
    """``get_model_profile(model, args=..., kwargs=..., print_profile=False, as_string=False, warm_up=0)``.

    * ``raw_total`` and ``macs``: the profiler's MACs (whole batch); ``extra``:
      ``flops`` (its FLOPs).
    * ``params``: its parameter count (``model.parameters()``, tied weights
      once, frozen ones included).
    * ``per_module``: every module's ``__macs__`` summed over its subtree,
      read before the profiler deletes them.

    ``warm_up=0``: the warm-up passes only settle the latency the profiler
    also measures; they are skipped (one forward instead of two).
    """

    backend = BACKEND


    def options(self) -> dict[str, Any]:
        return {"mode": "forward", "warm_up": 0, "print_profile": False, "as_string": False,
                "ignore_modules": None, "accelerator": os.environ.get("DS_ACCELERATOR", "cpu")}

    def preload(self) -> None:
        """Import the profiler on the CPU accelerator (see :meth:`Adapter.preload`)."""
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        super().preload()

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        from deepspeed.profiling.flops_profiler import profiler as impl

        from flopaudit.adapters._failures import (
            conv_argument_as_list,
            einsum_operand_list,
            located_assertions,
            named_failure,
            sdpa_keyword_tensors,
        )
        from flopaudit.adapters._restore import namespaces_restored, torch_namespaces
        from flopaudit.adapters.calflops import collectors_emptied
        from flopaudit.module_paths import first_names

        einops = getattr(impl, "einops", None)

        opts = self.options()
        names = first_names(model)
        per_module: dict[str, int] = {}
        original_end = impl.FlopsProfiler.end_profile

        def end_and_keep(profiler: Any) -> None:
            if profiler.model is model and profiler.started:
                per_module.update(_own_plus_subtree(model, names))
            original_end(profiler)

        impl.FlopsProfiler.end_profile = end_and_keep  # type: ignore[method-assign]
        namespaces = (*torch_namespaces(), *([einops] if einops is not None else []))
        try:
            with namespaces_restored(namespaces), collectors_emptied(impl), located_assertions():
                flops, macs, params = impl.get_model_profile(
                    model,
                    args=list(inputs.args),
                    kwargs=dict(inputs.kwargs),
                    print_profile=opts["print_profile"],
                    detailed=False,
                    warm_up=opts["warm_up"],
                    as_string=opts["as_string"],
                    ignore_modules=opts["ignore_modules"],
                    mode=opts["mode"],
                )
        except (AttributeError, TypeError) as exc:
            cause = (einsum_operand_list(exc, impl.__name__, model) if isinstance(exc, AttributeError)
                     else sdpa_keyword_tensors(exc, impl.__name__, model)
                     or conv_argument_as_list(exc, impl.__name__, model))
            if cause is None:
                raise
            raise named_failure(exc, cause) from exc
        finally:
            impl.FlopsProfiler.end_profile = original_end  # type: ignore[method-assign]
        return RawCount(
            raw_total=macs,
            macs=round(macs),
            params=int(params),
            per_module=per_module,
            extra={"flops": round(flops)},
        )


def _own_plus_subtree(model: nn.Module, names: dict[int, str]) -> dict[str, int]:
    """Each module's ``__macs__`` plus its descendants' (each module once), by first name."""
    out: dict[str, int] = {}
    for module in model.modules():
        path = names.get(id(module))
        if path is not None:
            out[path] = sum(int(getattr(m, "__macs__", 0) or 0) for m in module.modules())
    return out


__all__ = ["DeepSpeedAdapter"]
