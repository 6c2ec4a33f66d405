"""timm models as zoo cases: many architecture families, built offline.

Each case is ``timm.create_model(name, pretrained=False, **kwargs)`` (random
weights, nothing downloaded) in eval mode on one small image. The point is
the variety of code paths (attention classes, reparameterisable blocks,
normalisation and activation layers, LSTMs), not published numbers, so most
run below their native resolution (``img_size`` where the model takes one)
to stay fast on two cores. Tags: ``timm``, ``vision``, ``classification``,
the architecture family, a cost tag (``light`` under 1 GMAC, ``medium``
under 10), ``reparameterisable`` where it applies, and ``quick`` for the
representative subset the default test tier audits.

Reparameterisable models (RepVGG, MobileOne, FastViT, RepViT) are counted as
built: their train-time multi-branch form (parallel 3x3, 1x1 and identity
branches). Fusing them for deployment (``timm.utils.reparameterize_model``)
gives one convolution per block and fewer MACs; that is another model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from flopaudit.zoo.case import ModelCase, cost_tag, tensor_inputs
from flopaudit.zoo.optional import offline


@dataclass(frozen=True)
class TimmSpec:
    """One timm model: its name, the image side it runs at and its family."""

    name: str
    side: int
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    gmacs: float = 0.0
    """Canonical GMACs at ``side`` (reference counter, for the cost tag)."""
    note: str = ""
    quick: bool = False
    """In the representative subset of the default test tier."""


_REPARAM = "reparameterisable: counted as built (train-time branches), not fused for deployment"

#: Every timm case (tests require at least 40 models over 25 architecture families).
SPECS: tuple[TimmSpec, ...] = (
    # Vision transformers on timm's Attention (ptflops has its own hook for it).
    TimmSpec("vit_tiny_patch16_224", 96, "vit", {"img_size": 96}, 0.208, quick=True),
    TimmSpec("deit_tiny_patch16_224", 96, "deit", {"img_size": 96}, 0.208),
    TimmSpec("deit_tiny_distilled_patch16_224", 96, "deit", {"img_size": 96}, 0.214,
             note="two heads (class and distillation tokens), averaged in eval"),
    TimmSpec("pit_ti_224", 112, "pit", {"img_size": 112}, 0.150),
    TimmSpec("crossvit_tiny_240", 120, "crossvit", {"img_size": 120}, 0.345,
             note="two branches at patch sizes 12 and 16, fused by cross-attention"),
    TimmSpec("cait_xxs24_224", 112, "cait", {"img_size": 112}, 0.560, note="class-attention layers"),
    TimmSpec("eva02_tiny_patch14_224", 112, "eva", {"img_size": 112}, 0.372, note="rotary position embedding, SwiGLU"),
    TimmSpec("beit_base_patch16_224", 64, "beit", {"img_size": 64, "depth": 2}, 0.252,
             note="two of its 12 blocks (relative position bias)"),
    # Hybrids and efficient attention.
    TimmSpec("mobilevit_xxs", 128, "mobilevit", {}, 0.087, quick=True),
    TimmSpec("mobilevitv2_050", 128, "mobilevit", {}, 0.116, note="separable linear attention"),
    TimmSpec("levit_128s", 224, "levit", {}, 0.305, note="attention with learned biases, BatchNorm'd Linear"),
    TimmSpec("efficientvit_b0", 128, "efficientvit", {}, 0.034, note="MIT EfficientViT: ReLU linear attention"),
    TimmSpec("efficientvit_m0", 224, "efficientvit", {}, 0.079, note="MSRA EfficientViT: cascaded group attention"),
    TimmSpec("pvt_v2_b0", 128, "pvt", {}, 0.177, note="spatial-reduction attention"),
    TimmSpec("xcit_nano_12_p16_224", 112, "xcit", {"img_size": 112}, 0.138, note="cross-covariance attention"),
    TimmSpec("swin_tiny_patch4_window7_224", 112, "swin", {"img_size": 112, "window_size": 7}, 1.180,
             note="shifted windows of 7 at 112x112"),
    TimmSpec("coat_lite_tiny", 112, "coat", {"img_size": 112}, 0.392),
    TimmSpec("maxvit_pico_rw_256", 128, "maxvit", {"img_size": 128}, 0.423),
    TimmSpec("efficientformerv2_s0", 224, "efficientformer", {}, 0.396),
    TimmSpec("mobilenetv4_hybrid_medium", 128, "mobilenetv4", {}, 0.312, note="mobile multi-query attention"),
    TimmSpec("edgenext_xx_small", 128, "edgenext", {}, 0.065, note="split depth-wise transposed attention"),
    TimmSpec("twins_svt_small", 128, "twins", {"img_size": 128}, 1.160),
    TimmSpec("botnet26t_256", 128, "botnet", {"img_size": 128}, 0.805, note="bottleneck self-attention"),
    TimmSpec("shvit_s1", 224, "shvit", {}, 0.241),
    # MLPs and RNNs.
    TimmSpec("mixer_s32_224", 128, "mlp-mixer", {"img_size": 128}, 0.328),
    TimmSpec("gmlp_ti16_224", 128, "gmlp", {"img_size": 128}, 0.337),
    TimmSpec("sequencer2d_s", 64, "sequencer", {"img_size": 64}, 0.552, note="bidirectional LSTMs along rows and columns"),
    # Convolutional networks.
    TimmSpec("convnext_atto", 128, "convnext", {}, 0.179),
    TimmSpec("convnextv2_atto", 128, "convnext", {}, 0.179, note="global response normalisation"),
    TimmSpec("inception_next_atto", 128, "inception-next", {}, 0.165),
    TimmSpec("mambaout_femto", 128, "mambaout", {}, 0.376, note="gated CNN blocks"),
    TimmSpec("poolformerv2_s12", 128, "metaformer", {}, 0.592),
    TimmSpec("repvgg_a0", 128, "repvgg", {}, 0.495, note=_REPARAM),
    TimmSpec("mobileone_s0", 128, "mobileone", {}, 0.344, note=_REPARAM),
    TimmSpec("fastvit_t8", 128, "fastvit", {}, 0.173, note=_REPARAM, quick=True),
    TimmSpec("repvit_m0_9", 128, "repvit", {}, 0.268, note=_REPARAM),
    TimmSpec("hrnet_w18_small", 128, "hrnet", {}, 0.524, note="parallel multi-resolution branches"),
    TimmSpec("dla46_c", 128, "dla", {}, 0.188),
    TimmSpec("ghostnet_050", 128, "ghostnet", {}, 0.015),
    TimmSpec("ghostnetv2_100", 128, "ghostnet", {}, 0.058, note="DFC attention"),
    TimmSpec("mobilenetv4_conv_small", 128, "mobilenetv4", {}, 0.062),
    TimmSpec("mobilenetv3_small_050", 128, "mobilenetv3", {}, 0.009),
    TimmSpec("efficientnet_b0", 128, "efficientnet", {}, 0.127),
    TimmSpec("tinynet_e", 106, "efficientnet", {}, 0.024),
    TimmSpec("regnetx_002", 128, "regnet", {}, 0.065),
    TimmSpec("regnety_002", 128, "regnet", {}, 0.066, note="squeeze-and-excitation"),
    TimmSpec("nf_regnet_b0", 128, "nfnet", {}, 0.159, note="normaliser-free: weight-standardised convolutions"),
    TimmSpec("resnet26d", 96, "resnet", {}, 0.476),
    TimmSpec("res2net50_14w_8s", 64, "res2net", {}, 0.343),
    TimmSpec("resnest14d", 64, "resnest", {}, 0.227, note="split attention"),
    TimmSpec("densenet121", 64, "densenet", {}, 0.232),
    TimmSpec("dpn48b", 64, "dpn", {}, 0.137),
    TimmSpec("ese_vovnet19b_dw", 128, "vovnet", {}, 0.437),
    TimmSpec("cspresnet50", 64, "cspnet", {}, 0.283),
    TimmSpec("cs3darknet_focus_s", 128, "cspnet", {}, 0.172),
    TimmSpec("rexnet_100", 128, "rexnet", {}, 0.132),
    TimmSpec("hgnetv2_b0", 128, "hgnet", {}, 0.108),
    TimmSpec("fasternet_t0", 128, "fasternet", {}, 0.111, note="partial convolutions"),
    TimmSpec("starnet_s050", 128, "starnet", {}, 0.030),
    TimmSpec("lcnet_050", 128, "lcnet", {}, 0.016),
)


def build(name: str, kwargs: tuple[tuple[str, Any], ...] = ()) -> nn.Module:
    """``timm.create_model(name, pretrained=False, **kwargs)``, offline."""
    offline()
    import timm

    return timm.create_model(name, pretrained=False, **dict(kwargs))


def _description(spec: TimmSpec) -> str:
    options = ", ".join(f"{k}={v!r}" for k, v in spec.kwargs.items())
    text = f"timm {spec.name}({options}) on 1x3x{spec.side}x{spec.side}, random weights, about {spec.gmacs} GMACs"
    return text + (f"; {spec.note}" if spec.note else "")


def cases() -> list[ModelCase]:
    """One case per :data:`SPECS` entry, id ``timm-<name>``."""
    out = []
    for spec in SPECS:
        tags = {"timm", "vision", "classification", spec.family, cost_tag(spec.gmacs)}
        if spec.note == _REPARAM:
            tags.add("reparameterisable")
        if spec.quick:
            tags.add("quick")
        out.append(ModelCase(
            id=f"timm-{spec.name}",
            build=functools.partial(build, spec.name, tuple(spec.kwargs.items())),
            make_inputs=tensor_inputs(1, 3, spec.side, spec.side),
            tags=frozenset(tags),
            requires=("timm",),
            description=_description(spec),
        ))
    return out
