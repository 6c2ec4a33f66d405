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
