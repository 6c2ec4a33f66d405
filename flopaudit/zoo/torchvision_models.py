"""torchvision models as zoo cases, built with random weights (no download).

Classification models run at the crop size their weights' transforms use;
their published ``meta["_ops"]`` and ``meta["num_params"]`` are read from the
weight enums' metadata, which ships inside torchvision.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights, list_models

from flopaudit.zoo.case import ModelCase, cost_tag, tensor_inputs

#: Models with auxiliary heads that run only in train mode: also a ``<name>-train`` case.
TRAIN_MODE = ("googlenet", "inception_v3")

#: Cheap, representative classification models for the default zoo.
DEFAULT_CLASSIFICATION = ("resnet18", "resnet50", "mobilenet_v2", "vit_b_16", "convnext_tiny")


@dataclass(frozen=True)
class PublishedMeta:
    """Numbers torchvision publishes for a weight: conv+matmul GMACs and params."""

    weights: str
    gmacs: float
    num_params: int
    crop_size: int


def published_meta(model_name: str) -> PublishedMeta | None:
    """The first weight's metadata for ``model_name`` (None if it has none)."""
    try:
        weights = list(get_model_weights(model_name))
    except (ValueError, KeyError):
        return None
    if not weights:
        return None
    w = weights[0]
    crop = int(w.transforms.keywords.get("crop_size", 224))
    return PublishedMeta(str(w), float(w.meta.get("_ops", float("nan"))), int(w.meta["num_params"]), crop)


def _family(name: str) -> str:
    for prefix in ("resnext", "wide_resnet", "regnet", "resnet", "efficientnet_v2", "efficientnet",
                   "mobilenet_v3", "mobilenet_v2", "convnext", "densenet", "vgg", "vit", "swin",
                   "maxvit", "mnasnet", "shufflenet", "squeezenet", "inception", "googlenet", "alexnet"):
        if name.startswith(prefix):
            return prefix
    return name


def _build(name: str, **kwargs: object) -> nn.Module:
    return get_model(name, weights=None, **kwargs)


def classification_cases() -> list[ModelCase]:
    """Every torchvision classification model at its native crop size (and
    the :data:`TRAIN_MODE` ones once more, in train mode)."""
    cases = []
    for name in list_models(module=torchvision.models):
        meta = published_meta(name)
        crop = meta.crop_size if meta else 224
        kwargs: dict[str, object] = {}
        if name in ("googlenet", "inception_v3"):
            kwargs = {"aux_logits": True, "init_weights": False}
        if name.startswith("vit_") and crop != 224:
            kwargs = {"image_size": crop}  # vit_h_14's weights run at 518, its builder defaults to 224
        gmacs = meta.gmacs if meta else float("nan")
        tags = {"torchvision", "classification", "vision", _family(name)}
        tags.add(cost_tag(gmacs))
        cases.append(
            ModelCase(
                id=name,
                build=functools.partial(_build, name, **kwargs),
                make_inputs=tensor_inputs(1, 3, crop, crop),
                tags=frozenset(tags),
                description=f"torchvision {name} at {crop}x{crop}"
                + (f" (published {meta.gmacs} GMACs, {meta.num_params} params)" if meta else ""),
                default=name in DEFAULT_CLASSIFICATION,
            )
        )
        if name in TRAIN_MODE:
            cases.append(ModelCase(
                id=f"{name}-train",
                build=functools.partial(_build, name, **kwargs),
                make_inputs=tensor_inputs(2, 3, crop, crop),
                tags=frozenset(tags | {"train-mode"}),
                description=f"torchvision {name} at {crop}x{crop}, batch 2, in train mode: its auxiliary heads "
                "run (and BatchNorm uses batch statistics); counters that call model.eval() themselves leave "
                "them out",
                train=True,
            ))
    return cases
