"""Cases beyond torchvision classification and the hard cases.

* torchvision detection, segmentation and video models
  (:mod:`flopaudit.zoo.torchvision_extra`), always registered;
* timm models built offline with ``timm.create_model(name, pretrained=False)``;
* Hugging Face transformers built from configs (never ``from_pretrained``).

The timm and transformers cases are always registered and name the library
they need in ``requires``: building the registry never imports timm or
transformers (both are slow to import), the builders do, and selections skip
a case whose library is missing (:mod:`flopaudit.zoo.catalog`). None of
these cases is in the default zoo.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import torch
from torch import nn

from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase, tensor_inputs

#: timm models that build offline and run on CPU in well under a second:
#: name -> (input side, rough GMACs measured for the cost tag).
TIMM_MODELS: dict[str, tuple[int, float]] = {
    "vit_tiny_patch16_224": (224, 1.07),
    "levit_128s": (224, 0.30),
    "mobilevit_xxs": (256, 0.33),
    "convnextv2_atto": (224, 0.55),
    "efficientformerv2_s0": (224, 0.40),
    "mixer_s16_224": (224, 3.78),
    "fastvit_t8": (256, 0.69),
}


def _cost_tag(gmacs: float) -> str:
    return "heavy" if gmacs > 10 else "light" if gmacs < 1 else "medium"


def _offline() -> None:
    # Building from a config never needs the hub; make sure nothing tries.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _build_timm(name: str) -> nn.Module:
    _offline()
    import timm

    return timm.create_model(name, pretrained=False)


def timm_cases() -> list[ModelCase]:
    """timm classification models with random weights (``pretrained=False``)."""
    return [
        ModelCase(
            id=f"timm-{name}",
            build=functools.partial(_build_timm, name),
            make_inputs=tensor_inputs(1, 3, side, side),
            tags=frozenset({"timm", "vision", "classification", _cost_tag(gmacs)}),
            requires=("timm",),
            description=f"timm {name} at {side}x{side}, random weights (about {gmacs} GMACs conv+matmul)",
        )
        for name, (side, gmacs) in TIMM_MODELS.items()
    ]


def _ids(vocab: int, length: int) -> Callable[[], ModelInputs]:
    def make() -> ModelInputs:
        return ModelInputs((torch.randint(0, vocab, (1, length)),))

    return make


def _build_hf(model_class: str, config_class: str, config: dict[str, Any]) -> nn.Module:
    _offline()
    import transformers

    cfg = getattr(transformers, config_class)(use_cache=False, **config)
    return getattr(transformers, model_class)(cfg)


def transformers_cases() -> list[ModelCase]:
    """BERT-base, GPT-2 and a tiny Llama, built from configs, on ``input_ids`` of batch 1.

    ``expected_macs`` is every projection and FFN matmul plus the attention
    products over the full T x T score matrix (causal masking not subtracted):
    per layer 4*T*E*E (q, k, v, out) + 2*T*T*E (scores, weighted sum) + FFN.
    Embedding lookups, norms, softmax, GELU/SiLU and rotary embeddings are extra FLOPs.
    """
    t, e, f, layers = 128, 768, 3072, 12  # BERT-base and GPT-2 small: width 768, FFN 3072, 12 layers
    per_layer = 4 * t * e * e + 2 * t * t * e + 2 * t * e * f
    bert_macs = layers * per_layer + 1 * e * e  # + pooler Linear on the [CLS] token
    bert_params = (
        30522 * e + 512 * e + 2 * e + 2 * e  # word, position, token-type embeddings + LayerNorm
        + layers * (4 * (e * e + e) + 2 * e + e * f + f + f * e + e + 2 * e)  # attention, 2 LayerNorms, FFN
        + e * e + e  # pooler
    )
    gpt2_macs = layers * per_layer + t * e * 50257  # + LM head over the 50257-token vocabulary
    gpt2_params = (
        50257 * e + 1024 * e  # token and position embeddings (the LM head is tied to the first)
        + layers * (2 * e + e * 3 * e + 3 * e + e * e + e + 2 * e + e * f + f + f * e + e)
        + 2 * e  # final LayerNorm
    )
    lt, le, li, ll, lv = 64, 256, 688, 2, 1000  # tiny Llama: seq, width, MLP width, layers, vocab
    llama_config = {
        "hidden_size": le,
        "intermediate_size": li,
        "num_hidden_layers": ll,
        "num_attention_heads": 4,
        "vocab_size": lv,
    }
    # per layer q, k, v, o (4 heads = 4 kv heads) + scores + weighted sum + gate/up/down MLP; untied LM head
    llama_macs = ll * (4 * lt * le * le + 2 * lt * lt * le + 3 * lt * le * li) + lt * le * lv
    llama_params = lv * le + ll * (4 * le * le + 3 * le * li + 2 * le) + le + le * lv  # no biases; RMSNorm weights
    specs: list[tuple[str, str, str, dict[str, Any], int, int, int, int, str]] = [
        ("hf-bert-base", "BertModel", "BertConfig", {}, 30522, t, bert_macs, bert_params, "heavy"),
        ("hf-gpt2", "GPT2LMHeadModel", "GPT2Config", {}, 50257, t, gpt2_macs, gpt2_params, "heavy"),
        ("hf-llama-tiny", "LlamaForCausalLM", "LlamaConfig", llama_config, lv, lt, llama_macs, llama_params, "light"),
        (
            "hf-llama-tiny-eager",
            "LlamaForCausalLM",
            "LlamaConfig",
            {**llama_config, "attn_implementation": "eager"},
            lv,
            lt,
            llama_macs,
            llama_params,
            "light",
        ),
    ]
    out = []
    for case_id, model_class, config_class, config, vocab, length, macs, params, cost in specs:
        attn = config.get("attn_implementation", "default (sdpa)")
        out.append(
            ModelCase(
                id=case_id,
                build=functools.partial(_build_hf, model_class, config_class, config),
                make_inputs=_ids(vocab, length),
                tags=frozenset({"transformers", "nlp", "attention", cost}),
                expected_macs=macs,
                expected_params=params,
                requires=("transformers",),
                description=f"transformers {model_class} from {config_class}({_config_text(config)}), random "
                f"weights, input_ids (1, {length}), attention implementation {attn}",
            )
        )
    return out


def _config_text(config: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in config.items())


def cases() -> list[ModelCase]:
    """torchvision extras, timm and transformers cases (the latter need their library to build)."""
    from flopaudit.zoo import torchvision_extra

    return torchvision_extra.cases() + timm_cases() + transformers_cases()
