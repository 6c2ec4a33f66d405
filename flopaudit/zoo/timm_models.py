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

#: Every timm case (tests/test_zoo.py requires one model of each of timm's architecture modules, or says where one is).
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
    # One model of each further family of timm's model modules (the smallest; ViTs of 80M parameters
    # and more cut to two blocks), at 64x64 where it runs there.
    TimmSpec("convit_tiny", 64, "convit", {"img_size": 64}, 0.09, note="gated positional self-attention"),
    TimmSpec("convmixer_768_32", 64, "convmixer", {}, 1.636,
             note="depth-wise and point-wise convolutions on patches"),
    TimmSpec("cpubone_nano", 64, "cpubone", {}, 0.019),
    TimmSpec("csatv2", 64, "csatv2", {}, 0.021),
    TimmSpec("cspnext_tiny", 64, "cspnext", {}, 0.028),
    TimmSpec("davit_tiny", 64, "davit", {}, 0.572, note="dual attention: spatial windows and channel groups"),
    TimmSpec("deepseek_vit_412m", 112, "deepseek-vit", {"img_size": 112, "depth": 2}, 1.699,
             note="two of its blocks"),
    TimmSpec("efficientformer_l1", 224, "efficientformer", {"img_size": 224}, 1.291,
             note="a 4D pooling stage, then a 3D attention stage"),
    TimmSpec("efficientvim_m1", 64, "efficientvim", {}, 0.035, note="hidden-state mixer state-space duality"),
    TimmSpec("focalnet_tiny_srf", 64, "focalnet", {}, 0.36, note="focal modulation instead of attention"),
    TimmSpec("gcvit_xxtiny", 64, "gcvit", {"img_size": 64}, 0.16, note="global context attention"),
    TimmSpec("gemma4_vit_167m", 64, "gemma4-vit", {"img_size": 64, "depth": 2}, 0.564, note="two of its blocks"),
    TimmSpec("hardcorenas_b", 64, "hardcorenas", {}, 0.024),
    TimmSpec("hiera_tiny_224", 64, "hiera", {"img_size": 64}, 0.386, note="mask-unit attention, pooled query"),
    TimmSpec("sam2_hiera_tiny", 64, "hiera", {}, 1.102, note="SAM 2's image encoder trunk"),
    TimmSpec("iformer_t", 64, "iformer", {}, 0.042),
    TimmSpec("inception_resnet_v2", 96, "inception", {}, 0.734),
    TimmSpec("inception_v4", 96, "inception", {}, 0.731),
    TimmSpec("lcnetv2_small", 64, "lcnet", {}, 0.025),
    TimmSpec("lowformer_b0", 64, "lowformer", {}, 0.081, note="low-resolution attention"),
    TimmSpec("mobilenetv5_base", 64, "mobilenetv5", {}, 1.228,
             note="Gemma 3n's vision encoder: multi-scale fusion adapter"),
    TimmSpec("mvitv2_tiny", 64, "mvitv2", {"img_size": 64}, 0.33,
             note="pooling attention with decomposed relative positions"),
    TimmSpec("naflexvit_base_patch16_parfac_gap", 64, "naflexvit", {"img_size": 64, "depth": 2}, 0.295,
             note="two of its blocks; factorised position embedding"),
    TimmSpec("nasnetalarge", 64, "nasnet", {}, 0.843, note="searched cells of separable convolutions"),
    TimmSpec("nest_tiny", 64, "nest", {"img_size": 64}, 0.43,
             note="local attention in nested blocks, aggregated by convolutions"),
    TimmSpec("nextvit_small", 64, "nextvit", {}, 0.471),
    TimmSpec("pnasnet5large", 64, "nasnet", {}, 0.887, note="searched cells of separable convolutions"),
    TimmSpec("qwen3_vit_88m", 64, "qwen3-vit", {"img_size": 64, "depth": 2}, 0.237, note="two of its blocks"),
    TimmSpec("rdnet_tiny", 64, "rdnet", {}, 0.412, note="dense connections revisited"),
    TimmSpec("repghostnet_050", 64, "repghost", {}, 0.005),
    TimmSpec("resnetv2_18", 64, "resnetv2", {}, 0.149, note="pre-activation ResNet"),
    TimmSpec("selecsls42", 64, "selecsls", {}, 0.237, note="selective concatenated skip connections"),
    TimmSpec("legacy_seresnet18", 64, "senet", {}, 0.149, note="squeeze-and-excitation"),
    TimmSpec("skresnet18", 64, "sknet", {}, 0.149, note="selective kernel convolutions"),
    TimmSpec("swiftformer_xs", 64, "swiftformer", {"img_size": 64}, 0.05, note="efficient additive attention"),
    TimmSpec("swinv2_tiny_window8_256", 64, "swin", {"img_size": 64}, 0.372,
             note="scaled cosine attention, continuous position bias"),
    TimmSpec("swinv2_cr_tiny_224", 64, "swin", {"img_size": 64}, 0.358,
             note="scaled cosine attention, continuous position bias"),
    TimmSpec("tiny_vit_5m_224", 64, "tiny-vit", {}, 0.348, note="distilled small ViT with conv stages"),
    TimmSpec("tnt_s_legacy_patch16_224", 64, "tnt", {"img_size": 64}, 0.419,
             note="transformer in transformer: attention within and across patches"),
    TimmSpec("tresnet_m", 64, "tresnet", {}, 0.471, note="space-to-depth stem, anti-aliased down-sampling"),
    TimmSpec("visformer_tiny", 64, "visformer", {"img_size": 64}, 0.099),
    TimmSpec("vit_tiny_r_s16_p8_224", 64, "vit-hybrid", {"img_size": 64}, 0.04, note="a ResNet stem under a ViT"),
    TimmSpec("test_vit_relpos", 64, "vit-relpos", {"img_size": 64}, 0.013, note="relative position bias"),
    TimmSpec("samvit_base_patch16_224", 64, "samvit", {"img_size": 64, "depth": 2}, 1.212,
             note="two of its blocks; windowed attention, relative positions"),
    TimmSpec("vitamin_small_224", 64, "vitamin", {"img_size": 64}, 0.45),
    TimmSpec("volo_d1_224", 64, "volo", {"img_size": 64}, 0.537, note="outlook attention"),
    TimmSpec("legacy_xception", 64, "xception", {}, 0.365, note="separable convolutions"),
    TimmSpec("xception41p", 64, "xception", {}, 0.408, note="separable convolutions"),
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
