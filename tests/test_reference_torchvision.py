"""Reference counter under the ``torchvision`` ruleset against torchvision's
published weight metadata: ``meta["_ops"]`` (conv + matmul GMACs, given to 3
decimals) within 0.1% (or within the published rounding, half a unit in the
last place, for models under 0.5 GMACs) and ``meta["num_params"]`` exactly.

Counted on the meta device (no weights allocated). The default tier runs a
fast subset; ``-m slow`` runs every classification model torchvision ships.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import get_model, list_models

from flopaudit.reference import count_meta
from flopaudit.zoo.torchvision_models import published_meta

#: Submodules that torchvision's num_params leaves out (auxiliary classifiers).
#: inception_v3's published count includes its AuxLogits; googlenet's excludes aux1/aux2.
AUX_EXCLUDED = {"googlenet": ("aux1", "aux2")}

FAST = ["resnet18", "mobilenet_v2", "vit_b_16", "efficientnet_b0"]
ALL = sorted(n for n in list_models(module=torchvision.models) if published_meta(n) is not None)


def build(name: str, crop: int) -> nn.Module:
    kwargs: dict[str, object] = {}
    if name in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": True, "init_weights": False}
    if name.startswith("vit_") and crop != 224:
        kwargs["image_size"] = crop  # vit_h_14's weights run at 518
    return get_model(name, weights=None, **kwargs).eval()


def check(name: str) -> None:
    meta = published_meta(name)
    assert meta is not None
    holder: dict[str, nn.Module] = {}

    def make() -> nn.Module:
        holder["model"] = build(name, meta.crop_size)
        return holder["model"]

    result = count_meta(make, lambda: torch.zeros(1, 3, meta.crop_size, meta.crop_size), ruleset="torchvision",
                        fallback="raise")
    assert result.unsupported == {}, f"{name}: unsupported ops {result.unsupported}"
    gmacs = result.ruleset.total / 1e9
    tolerance = max(1e-3 * meta.gmacs, 0.0005)
    assert abs(gmacs - meta.gmacs) <= tolerance, f"{name}: {gmacs:.5f} GMACs vs published {meta.gmacs}"
    model = holder["model"]
    aux = AUX_EXCLUDED.get(name, ())
    aux_params = sum(p.numel() for n, m in model.named_children() if n in aux for p in m.parameters())
    assert result.params.unique - aux_params == meta.num_params


@pytest.mark.parametrize("name", FAST)
def test_fast_subset_matches_published_metadata(name: str) -> None:
    check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL)
def test_every_classification_weight_matches_published_metadata(name: str) -> None:
    check(name)


# ---------------------------------------------------------------- beyond classification
#
# Every detection, segmentation, video, optical-flow and quantization weight
# torchvision publishes ``_ops`` for, counted at the zoo case's configuration
# (flopaudit/zoo/torchvision_extra.py says why each one is what it is).
# Detection runs on real tensors (its heads run once per surviving proposal
# or detection, which needs values); the others on meta.

from functools import cache  # noqa: E402

from torchvision.models import get_model_weights  # noqa: E402

from flopaudit.reference import count  # noqa: E402
from flopaudit.zoo import torchvision_extra  # noqa: E402

EXTRA = {s.id: s for s in torchvision_extra.SPECS}
EXTRA_FAST = ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn", "lraspp_mobilenet_v3_large",
              "r3d_18", "raft_small", "quantized_mobilenet_v2"]


def _case_for(name: str, weight: str) -> str:
    """The zoo case reproducing ``weight`` of builder ``name``: the one naming it, else the builder's own."""
    specs = [s for s in torchvision_extra.SPECS if s.name == name]
    named = [s.id for s in specs if s.weights == weight]
    return named[0] if named else next(s.id for s in specs if not s.weights)


#: (case id, weight) for every weight with ``_ops``: the case that reproduces it.
EXTRA_WEIGHTS = sorted(
    (_case_for(name, w.name), str(w))
    for name in dict.fromkeys(s.name for s in torchvision_extra.SPECS)
    for w in get_model_weights(name) if "_ops" in w.meta
)


@cache
def _extra_count(case_id: str) -> tuple[float, int, dict[str, int]]:
    """(torchvision-ruleset GMACs, unique params, unsupported ops) of a zoo case."""
    spec = EXTRA[case_id]
    build = lambda: torchvision_extra.build(spec.name, spec.build_kwargs).eval()  # noqa: E731
    if spec.task == "detection":
        torch.manual_seed(0)
        model = build()
        torch.manual_seed(1)
        result = count(model, spec.make_inputs(), ruleset="torchvision")
    else:
        result = count_meta(build, lambda: spec.make_inputs(), ruleset="torchvision", fallback="raise")
    return result.ruleset.total / 1e9, result.params.unique, dict(result.unsupported)


def _check_extra(case_id: str, weight: str) -> None:
    spec = EXTRA[case_id]
    meta = next(w for w in get_model_weights(spec.name) if str(w) == weight).meta
    gmacs, params, unsupported = _extra_count(case_id)
    tolerance = max(1e-3 * meta["_ops"], 0.0005)
    assert abs(gmacs - meta["_ops"]) <= tolerance, f"{case_id}: {gmacs:.5f} GMACs vs published {meta['_ops']} ({weight})"
    if spec.task == "detection":
        # NMS, ROI align and the like carry no conv/matmul MACs. Without backbone weights torchvision builds
        # BatchNorm2d for the trained models' FrozenBatchNorm2d, so num_params is not comparable.
        assert set(unsupported) <= {"torchvision.nms.default", "torchvision.roi_align.default",
                                    "aten._unique2.default"}, unsupported
    else:
        assert unsupported == {} and params == meta["num_params"], (case_id, params, meta["num_params"])


def test_every_published_weight_beyond_classification_has_a_case() -> None:
    import torchvision.models as tvm

    builders = [n for m in (tvm.detection, tvm.segmentation, tvm.video, tvm.optical_flow, tvm.quantization)
                for n in list_models(module=m)]
    published = {str(w) for n in builders for w in get_model_weights(n) if "_ops" in w.meta}
    assert published == {w for _case, w in EXTRA_WEIGHTS}
    assert len(published) >= 45


@pytest.mark.parametrize(("case_id", "weight"), [p for p in EXTRA_WEIGHTS if p[0] in EXTRA_FAST])
def test_fast_extra_subset_matches_published_metadata(case_id: str, weight: str) -> None:
    _check_extra(case_id, weight)


@pytest.mark.slow
@pytest.mark.parametrize(("case_id", "weight"), EXTRA_WEIGHTS)
def test_every_weight_beyond_classification_matches_published_metadata(case_id: str, weight: str) -> None:
    _check_extra(case_id, weight)
