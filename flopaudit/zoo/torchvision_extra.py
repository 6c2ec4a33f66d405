"""torchvision beyond classification: detection, segmentation, video, optical
flow and the quantization-ready classifiers, at the configurations that
reproduce their published ``meta["_ops"]``.

Every builder is called with ``weights=None`` (and ``weights_backbone=None``
where it takes one): random weights, nothing downloaded. The published
numbers (conv + matmul GMACs, bias excluded; see the ``torchvision``
ruleset) are read from the weight enums' metadata, which ships inside
torchvision; each case names the weight it reproduces and its description
quotes the number. Inputs:

* segmentation: one 1x3x520x520 image (the weights' ``resize_size``);
  FCN and DeepLabV3 with ``aux_loss=True``: their published counts include
  the auxiliary FCN head;
* video: one 16-frame clip at the crop size (112x112, 224x224 for MViT, S3D
  and Video Swin);
* optical flow: two 1x3x512x512 frames, 12 flow updates (RAFT's default);
* quantization: the float, quantization-ready models (``quantize=False``;
  quantized kernels are another operator set), GoogLeNet without its
  auxiliary heads as its quantized weights are;
* detection: one 3x224x224 image in [0, 1). The model's own transform resizes
  it (to 800x800, 320x320 for the ``_320`` variants, 300x300 for SSD, 320x320
  for SSDlite), so any square image counts the same.

Detection counts depend on the data in the R-CNN family: the box head runs
once per proposal that reaches it, the mask and keypoint heads once per
detection. The published numbers were measured on one pass of the trained
model on one image, where those numbers were: 1000 proposals (the RPN's
``post_nms_top_n``) for the ResNet-50 models, none for the MobileNet ones
(their RPN keeps proposals scoring at least 0.05, and none did); no detection
for Mask R-CNN v1 and Keypoint R-CNN's legacy weights, 100 for Mask R-CNN v2
and one for Keypoint R-CNN v1. Random weights give other numbers, so each
case pins them with the builder's thresholds (``rpn_nms_thresh=1.0`` keeps
every proposal for the top 1000; ``rpn_score_thresh=1.0`` and
``box_score_thresh=1.0`` let none through; ``box_score_thresh=0.0``,
``box_nms_thresh=1.0`` and ``box_detections_per_img`` set how many
detections there are). Without backbone weights torchvision builds
``BatchNorm2d`` where the trained models have ``FrozenBatchNorm2d``; neither
counts under the ``torchvision`` ruleset.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights

from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase, cost_tag, tensor_inputs


@dataclass(frozen=True)
class ExtraSpec:
    """One torchvision case: builder, task, inputs, builder options, the weight it reproduces."""

    name: str
    task: str  # "detection", "segmentation", "video", "optical-flow" or "quantization"
    make_inputs: Callable[[], ModelInputs]
    input_text: str
    build_kwargs: tuple[tuple[str, object], ...] = ()
    """Passed to the builder after ``weights=None``."""
    weights: str = ""
    """The weight enum member whose ``meta["_ops"]`` the case reproduces ('' = the first)."""
    case_id: str = ""
    """Zoo id ('' = the builder's name)."""
    note: str = ""
    quick: bool = False
    """In the representative subset of the default test tier (tag ``quick``)."""

    @property
    def id(self) -> str:
        return self.case_id or self.name


def _image_list(*sizes: tuple[int, int]) -> Callable[[], ModelInputs]:
    """Inputs for a detection model: one list of (3, H, W) images in [0, 1)."""

    def make() -> ModelInputs:
        return ModelInputs(([torch.rand(3, h, w) for h, w in sizes],))

    return make


def _frame_pair(h: int, w: int) -> Callable[[], ModelInputs]:
    """Inputs for an optical-flow model: two (1, 3, H, W) frames."""

    def make() -> ModelInputs:
        return ModelInputs((torch.rand(1, 3, h, w) * 2 - 1, torch.rand(1, 3, h, w) * 2 - 1))

    return make


_NO_BACKBONE = (("weights_backbone", None),)  # detection/segmentation builders download it otherwise
_IMAGE = _image_list((224, 224))
_ALL_PROPOSALS = (("rpn_nms_thresh", 1.0),)
_NO_PROPOSAL = (("rpn_score_thresh", 1.0),)
_NO_DETECTION = (("box_score_thresh", 1.0),)


def _detections(n: int) -> tuple[tuple[str, object], ...]:
    return (("box_score_thresh", 0.0), ("box_nms_thresh", 1.0), ("box_detections_per_img", n))


def _detection(name: str, *kwargs: tuple[str, object], note: str = "", weights: str = "",
               case_id: str = "", quick: bool = False) -> ExtraSpec:
    return ExtraSpec(name, "detection", _IMAGE, "[3x224x224], resized by the model", (*_NO_BACKBONE, *kwargs),
                     weights, case_id, note, quick)


def _segmentation(name: str, aux: bool = True) -> ExtraSpec:
    kwargs = (*_NO_BACKBONE, ("aux_loss", True)) if aux else _NO_BACKBONE
    return ExtraSpec(name, "segmentation", tensor_inputs(1, 3, 520, 520), "1x3x520x520", kwargs,
                     note="auxiliary FCN head on, as in the published weights" if aux else "")


def _video(name: str, side: int) -> ExtraSpec:
    return ExtraSpec(name, "video", tensor_inputs(1, 3, 16, side, side), f"a 1x3x16x{side}x{side} clip")


def _quantizable(name: str, side: int = 224, *kwargs: tuple[str, object], quick: bool = False) -> ExtraSpec:
    return ExtraSpec(name, "quantization", tensor_inputs(1, 3, side, side), f"1x3x{side}x{side}",
                     (("quantize", False), *kwargs), note="float quantization-ready model (quantize=False)", quick=quick)


_PROPOSALS_1000 = "1000 proposals reach the box head (RPN NMS threshold 1.0)"
_NO_PROPOSALS = "no proposal reaches the box head (rpn_score_thresh=1.0), as in the published pass"

SPECS: tuple[ExtraSpec, ...] = (
    _detection("fasterrcnn_resnet50_fpn", *_ALL_PROPOSALS, note=_PROPOSALS_1000),
    _detection("fasterrcnn_resnet50_fpn_v2", *_ALL_PROPOSALS, note=_PROPOSALS_1000),
    _detection("fasterrcnn_mobilenet_v3_large_fpn", *_NO_PROPOSAL, note=_NO_PROPOSALS),
    _detection("fasterrcnn_mobilenet_v3_large_320_fpn", *_NO_PROPOSAL, note=_NO_PROPOSALS, quick=True),
    _detection("maskrcnn_resnet50_fpn", *_ALL_PROPOSALS, *_NO_DETECTION,
               note=_PROPOSALS_1000 + "; no detection reaches the mask head"),
    _detection("maskrcnn_resnet50_fpn_v2", *_ALL_PROPOSALS, *_detections(100),
               note=_PROPOSALS_1000 + "; 100 detections reach the mask head"),
    _detection("keypointrcnn_resnet50_fpn", *_ALL_PROPOSALS, *_detections(1), weights="COCO_V1",
               note=_PROPOSALS_1000 + "; one detection reaches the keypoint head"),
    _detection("keypointrcnn_resnet50_fpn", *_ALL_PROPOSALS, *_NO_DETECTION, weights="COCO_LEGACY",
               case_id="keypointrcnn_resnet50_fpn-coco_legacy",
               note=_PROPOSALS_1000 + "; no detection reaches the keypoint head"),
    _detection("retinanet_resnet50_fpn"),
    _detection("retinanet_resnet50_fpn_v2"),
    _detection("fcos_resnet50_fpn"),
    _detection("ssd300_vgg16"),
    _detection("ssdlite320_mobilenet_v3_large"),
    _segmentation("fcn_resnet50"),
    _segmentation("fcn_resnet101"),
    _segmentation("deeplabv3_resnet50"),
    _segmentation("deeplabv3_resnet101"),
    _segmentation("deeplabv3_mobilenet_v3_large"),
    _segmentation("lraspp_mobilenet_v3_large", aux=False),
    _video("r3d_18", 112),
    _video("mc3_18", 112),
    _video("r2plus1d_18", 112),
    _video("s3d", 224),
    _video("mvit_v1_b", 224),
    _video("mvit_v2_s", 224),
    _video("swin3d_t", 224),
    _video("swin3d_s", 224),
    _video("swin3d_b", 224),
    ExtraSpec("raft_small", "optical-flow", _frame_pair(512, 512), "two 1x3x512x512 frames"),
    ExtraSpec("raft_large", "optical-flow", _frame_pair(512, 512), "two 1x3x512x512 frames"),
    _quantizable("quantized_googlenet", 224, ("aux_logits", False)),
    _quantizable("quantized_inception_v3", 299),
    _quantizable("quantized_mobilenet_v2"),
    _quantizable("quantized_mobilenet_v3_large"),
    _quantizable("quantized_resnet18"),
    _quantizable("quantized_resnet50"),
    _quantizable("quantized_resnext101_32x8d"),
    _quantizable("quantized_resnext101_64x4d"),
    _quantizable("quantized_shufflenet_v2_x0_5"),
    _quantizable("quantized_shufflenet_v2_x1_0"),
    _quantizable("quantized_shufflenet_v2_x1_5"),
    _quantizable("quantized_shufflenet_v2_x2_0"),
)


def published(spec: ExtraSpec) -> tuple[str, float, int] | None:
    """(weight, GMACs, params) the case reproduces, from torchvision's metadata."""
    try:
        weights = list(get_model_weights(spec.name))
    except (ValueError, KeyError):
        return None
    chosen = next((w for w in weights if w.name == spec.weights), weights[0] if weights else None)
    if chosen is None or "_ops" not in chosen.meta:
        return None
    return str(chosen), float(chosen.meta["_ops"]), int(chosen.meta["num_params"])


def build(name: str, kwargs: tuple[tuple[str, object], ...]) -> nn.Module:
    return get_model(name, weights=None, **dict(kwargs))


def cases() -> list[ModelCase]:
    """One case per :data:`SPECS` entry (never in the default zoo)."""
    out = []
    for spec in SPECS:
        meta = published(spec)
        tags = {"torchvision", "vision", spec.task} | ({"quick"} if spec.quick else set())
        options = "".join(f", {k}={v!r}" for k, v in spec.build_kwargs)
        text = f"torchvision {spec.name}(weights=None{options}) ({spec.task}) on {spec.input_text}, random weights"
        if meta is not None:
            weight, gmacs, params = meta
            tags.add(cost_tag(gmacs))
            text += f"; reproduces {weight}: published {gmacs} GMACs, {params} params"
        if spec.note:
            text += f"; {spec.note}"
        out.append(
            ModelCase(
                id=spec.id,
                build=functools.partial(build, spec.name, spec.build_kwargs),
                make_inputs=spec.make_inputs,
                tags=frozenset(tags),
                description=text,
            )
        )
    return out
