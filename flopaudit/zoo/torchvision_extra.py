"""torchvision detection, segmentation and video models as zoo cases.

Built with ``weights=None, weights_backbone=None`` (random weights, nothing
downloaded) and run in eval mode on CPU. Detection models take a *list* of
3-D images and return a list of dicts; segmentation models return a dict
(``out`` and, with ``aux_loss=True``, ``aux``).

Published numbers (``meta["_ops"]`` conv+matmul GMACs, ``meta["num_params"]``)
come from the first weight enum and are quoted in each description; they are
comparable only where the case runs the same input and head configuration:

* segmentation and video cases use the published input size (and
  ``aux_loss=True`` for DeepLabV3, whose weights carry the aux head);
* NB: detection counts are data-dependent (the box head runs once per
  surviving proposal, and random weights change how many survive), and
  without backbone weights torchvision builds ``BatchNorm2d`` instead of
  ``FrozenBatchNorm2d``, so the BN affine terms become parameters.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase, tensor_inputs


@dataclass(frozen=True)
class _Spec:
    name: str
    task: str  # "detection", "segmentation" or "video"
    make_inputs: Callable[[], ModelInputs]
    input_text: str
    build_kwargs: tuple[tuple[str, object], ...] = ()
    """Passed to the builder after ``weights=None``."""
    note: str = ""


def _image_list(*sizes: tuple[int, int]) -> Callable[[], ModelInputs]:
    """Inputs for a detection model: one list of (3, H, W) images in [0, 1)."""

    def make() -> ModelInputs:
        return ModelInputs(([torch.rand(3, h, w) for h, w in sizes],))

    return make


_NO_BACKBONE = (("weights_backbone", None),)  # detection/segmentation builders download it otherwise

_SPECS = (
    _Spec("ssdlite320_mobilenet_v3_large", "detection", _image_list((320, 320)), "[3x320x320]", _NO_BACKBONE),
    _Spec(
        "fasterrcnn_mobilenet_v3_large_320_fpn",
        "detection",
        _image_list((320, 320)),
        "[3x320x320]",
        _NO_BACKBONE,
        note="box head cost depends on how many proposals survive NMS",
    ),
    _Spec(
        "lraspp_mobilenet_v3_large", "segmentation", tensor_inputs(1, 3, 520, 520), "1x3x520x520", _NO_BACKBONE
    ),
    _Spec(
        "deeplabv3_mobilenet_v3_large",
        "segmentation",
        tensor_inputs(1, 3, 520, 520),
        "1x3x520x520",
        build_kwargs=(*_NO_BACKBONE, ("aux_loss", True)),
        note="aux head on, as in the published weights",
    ),
    _Spec("r3d_18", "video", tensor_inputs(1, 3, 16, 112, 112), "a 1x3x16x112x112 clip"),
    _Spec("r2plus1d_18", "video", tensor_inputs(1, 3, 16, 112, 112), "a 1x3x16x112x112 clip"),
)


def _published(name: str) -> tuple[float, int] | None:
    """(GMACs, params) of the first published weight of ``name``, if any."""
    try:
        weights = list(get_model_weights(name))
    except (ValueError, KeyError):
        return None
    if not weights:
        return None
    meta = weights[0].meta
    return float(meta.get("_ops", float("nan"))), int(meta["num_params"])


def _cost_tag(gmacs: float) -> str:
    # same thresholds as the classification cases
    return "heavy" if gmacs > 10 else "light" if gmacs < 1 else "medium"


def _build(name: str, kwargs: tuple[tuple[str, object], ...]) -> nn.Module:
    return get_model(name, weights=None, **dict(kwargs))


def cases() -> list[ModelCase]:
    """Detection, segmentation and video cases (never in the default zoo)."""
    out = []
    for spec in _SPECS:
        published = _published(spec.name)
        tags = {"torchvision", "vision", spec.task}
        text = f"torchvision {spec.name} ({spec.task}) on {spec.input_text}, random weights"
        if published is not None:
            gmacs, params = published
            tags.add(_cost_tag(gmacs))
            text += f" (published {gmacs} GMACs, {params} params)"
        if spec.note:
            text += f"; {spec.note}"
        out.append(
            ModelCase(
                id=spec.name,
                build=functools.partial(_build, spec.name, spec.build_kwargs),
                make_inputs=spec.make_inputs,
                tags=frozenset(tags),
                description=text,
            )
        )
    return out
