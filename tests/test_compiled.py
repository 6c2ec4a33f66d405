"""Models holding ``torch.compile``d modules: counted as written, the same whatever ran before
(flopaudit/eager.py), and the compile wrapper's attribute forwarding named where counters read it."""

from __future__ import annotations

import torch
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.eager import compiled_code_eager
from flopaudit.inputs import ModelInputs
from flopaudit.reference import count
from flopaudit.reference.module_tree import walk
from flopaudit.zoo.hard.structure import CompiledParts

STEM_MACS = 4 * 16 * 32


def _inputs() -> ModelInputs:
    return ModelInputs((torch.randn(4, 16),))


def _compiled_and_run() -> CompiledParts:
    """The hard case, its compiled code made by a first call (with compilation on), as a user's model arrives."""
    model = CompiledParts()
    model(torch.randn(4, 16))
    return model


def test_compiled_code_runs_eagerly_in_the_block() -> None:
    compiled_graphs: list[object] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: object) -> object:
        compiled_graphs.append(gm)
        return gm.forward

    fn = torch.compile(lambda x: x * 2 + 1, backend=backend)
    with compiled_code_eager():
        assert torch.equal(fn(torch.ones(3)), torch.full((3,), 3.0))
    assert compiled_graphs == []  # not compiled inside the block
    fn(torch.ones(3))
    assert len(compiled_graphs) == 1  # and compiled again outside it


def test_hook_counters_see_modules_compiled_before_their_hooks() -> None:
    """Compiled code skips hooks registered after it was compiled: without running it eagerly,
    ptflops would count the compiled stem Linear 0 here."""
    plain = get_adapter("ptflops-pytorch").count(_compiled_and_run(), _inputs())
    assert plain.ok, plain.error
    assert dict(plain.per_module)["stem._orig_mod"] == STEM_MACS + 4 * 32  # bias included (one per output)


def test_a_count_does_not_depend_on_the_backends_before_it() -> None:
    model = _compiled_and_run()
    alone = get_adapter("ptflops-pytorch").count(model, _inputs())
    for other in ("deepspeed", "calflops", "reference"):
        get_adapter(other).count(model, _inputs())
    after = get_adapter("ptflops-pytorch").count(model, _inputs())
    assert alone.ok and after.ok
    assert (after.macs, after.per_module) == (alone.macs, alone.per_module)


def test_the_tree_names_each_compile_wrapper_of_a_module() -> None:
    model = _compiled_and_run()
    linear = nn.Linear(4, 4)
    twice = nn.Sequential(torch.compile(linear, backend="eager"), torch.compile(linear, backend="eager"))
    assert walk(model).wrappers == {id(model.stem._orig_mod): ("stem",), id(model.block._orig_mod): ("block",)}
    assert walk(twice).wrappers == {id(linear): ("0", "1")}  # one module compiled twice
    assert walk(nn.Sequential(nn.Linear(4, 4))).wrappers == {}


def test_the_recording_marks_calls_of_wrapped_modules() -> None:
    model = _compiled_and_run()
    ref = count(model, _inputs())
    wrapped = {c.path: c.wrapped_by for c in ref.module_call_records if c.wrapped_by}
    assert wrapped == {"stem._orig_mod": ("stem",), "block._orig_mod": ("block",)}
    assert ref.macs == STEM_MACS + 4 * 32 * 32 + 4 * 32 * 8
    assert not any("global hooks" in n for n in ref.notes)


def test_attribute_counters_read_a_wrapped_module_twice() -> None:
    """DeepSpeed and calflops keep counts in ``module.__macs__``; the wrapper forwards the attribute,
    so the wrapped module's own MACs (the stem Linear, the block's matmul) are read again under
    the wrapper's name, and the prediction books them to that cause at the wrapper."""
    model = _compiled_and_run()
    ref = get_adapter("reference").count(model, _inputs())
    own_reads = STEM_MACS + 4 * 32 * 8  # the stem Linear, and the block's own matmul (block.fc has its own)
    for backend in ("deepspeed", "calflops"):
        actual = get_adapter(backend).count(model, _inputs())
        prediction = ref.prediction(backend)
        assert actual.macs == prediction.macs == ref.macs + own_reads, backend
        wrapper = [c for c in prediction.contributions if "torch.compile" in c.rule]
        assert [(c.kind, c.macs, dict(c.layers)) for c in wrapper] == [
            ("reused-module", own_reads, {"stem": STEM_MACS, "block": 4 * 32 * 8})]
