"""Hugging Face transformers built from configs as zoo cases (never ``from_pretrained``).

Small configs (width 64, two layers, a 1000-token vocabulary) keep every
family's code path (BERT, GPT-2, Llama with grouped-query attention, T5,
BART, ViT, Whisper, CLIP, DeBERTa-v2, Wav2Vec2, SigLIP, Mamba, Mixtral, and
one base model of each of 42 more text architectures: encoders such as
ALBERT, RoBERTa, Longformer and BigBird, decoders such as OPT, Falcon,
Mistral, Qwen, Gemma, Phi, their mixtures of experts, Mamba-2 and RWKV)
while counting in milliseconds; BERT-base and GPT-2
small at full size are there too (``heavy``). Models run in eval mode with
``use_cache=False`` and the default attention implementation (SDPA) unless
the id says ``eager``. Inputs are keyword arguments, as the models are called
(``input_ids``, ``attention_mask``, ``decoder_input_ids``, ``pixel_values``,
``input_features``, ``input_values``).

``expected_macs`` (where given) is every projection and FFN matmul plus the
attention products over the full ``T x T`` score matrix (causal masking not
subtracted), for the whole batch; embeddings, norms, softmax, activations and
rotary embeddings are extra FLOPs, not MACs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.optional import offline

_SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
          "vocab_size": 1000}
_SEQ2SEQ = {"d_model": 64, "encoder_layers": 2, "decoder_layers": 2, "encoder_attention_heads": 4,
            "decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128, "vocab_size": 1000}
_TEXT = {**_SMALL, "max_position_embeddings": 128}
_GQA = {"num_key_value_heads": 2}  # two key/value heads for the four query heads
_QUICK = frozenset({"quick"})  # in the representative subset of the default test tier
_IDS = {"pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 1}  # within the small vocabulary


@dataclass(frozen=True)
class HFSpec:
    """One transformers model: classes, config, inputs (name -> (kind, shape))."""

    id: str
    model_class: str
    config_class: str
    config: Mapping[str, Any]
    inputs: Mapping[str, tuple[str, tuple[int, ...]]]
    family: str
    expected_macs: int | None = None
    expected_params: int | None = None
    cost: str = "light"
    note: str = ""
    tags: frozenset[str] = field(default_factory=frozenset)


def _bert_numbers(b: int, t: int, e: int, f: int, layers: int, vocab: int, positions: int) -> tuple[int, int]:
    """(MACs, params) of ``BertModel``: per layer q, k, v, out projections,
    scores and weighted sum, FFN; the pooler's Linear on the [CLS] token."""
    macs = b * (layers * (4 * t * e * e + 2 * t * t * e + 2 * t * e * f) + e * e)
    params = (
        vocab * e + positions * e + 2 * e + 2 * e  # word, position, token-type embeddings + LayerNorm
        + layers * (4 * (e * e + e) + 2 * e + e * f + f + f * e + e + 2 * e)  # attention, 2 LayerNorms, FFN
        + e * e + e  # pooler
    )
    return macs, params


def _gpt2_numbers(b: int, t: int, e: int, layers: int, vocab: int, positions: int) -> tuple[int, int]:
    """(MACs, params) of ``GPT2LMHeadModel`` (FFN width 4E, LM head tied to the token embedding)."""
    f = 4 * e
    macs = b * (layers * (4 * t * e * e + 2 * t * t * e + 2 * t * e * f) + t * e * vocab)
    params = (
        vocab * e + positions * e
        + layers * (2 * e + e * 3 * e + 3 * e + e * e + e + 2 * e + e * f + f + f * e + e)
        + 2 * e  # final LayerNorm
    )
    return macs, params


def _llama_numbers(b: int, t: int, e: int, inter: int, layers: int, heads: int, kv_heads: int,
                   vocab: int) -> tuple[int, int]:
    """(MACs, params) of ``LlamaForCausalLM``: q and o projections E x E, k
    and v E x (kv_heads x head_dim) (grouped-query attention), scores and
    weighted sum over all heads, gate/up/down MLP, an untied LM head."""
    kv = kv_heads * (e // heads)
    macs = b * (layers * (2 * t * e * e + 2 * t * e * kv + 2 * t * t * e + 3 * t * e * inter) + t * e * vocab)
    params = vocab * e + layers * (2 * e * e + 2 * e * kv + 3 * e * inter + 2 * e) + e + e * vocab
    return macs, params


def _specs() -> tuple[HFSpec, ...]:
    bert_macs, bert_params = _bert_numbers(2, 16, 64, 128, 2, 1000, 64)
    gpt2_macs, gpt2_params = _gpt2_numbers(2, 16, 64, 2, 1000, 64)
    gqa_macs, gqa_params = _llama_numbers(2, 16, 64, 128, 2, 4, 2, 1000)
    base_macs, base_params = _bert_numbers(1, 128, 768, 3072, 12, 30522, 512)
    gpt2s_macs, gpt2s_params = _gpt2_numbers(1, 128, 768, 12, 50257, 1024)
    tiny_macs, tiny_params = _llama_numbers(1, 64, 256, 688, 2, 4, 4, 1000)
    tiny = {"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2, "num_attention_heads": 4,
            "vocab_size": 1000}
    ids16 = {"input_ids": ("ids", (2, 16))}
    return (
        HFSpec("hf-bert-tiny", "BertModel", "BertConfig", {**_SMALL, "max_position_embeddings": 64},
               {**ids16, "attention_mask": ("ones", (2, 16))}, "bert", bert_macs, bert_params, tags=_QUICK),
        HFSpec("hf-gpt2-tiny", "GPT2LMHeadModel", "GPT2Config",
               {"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 1000, "n_positions": 64, **_IDS},
               ids16, "gpt2", gpt2_macs, gpt2_params, note="Conv1D projections"),
        HFSpec("hf-llama-gqa", "LlamaForCausalLM", "LlamaConfig", {**_SMALL, "num_key_value_heads": 2, **_IDS},
               ids16, "llama", gqa_macs, gqa_params, note="grouped-query attention: 4 query heads share 2 key/value heads",
               tags=_QUICK),
        HFSpec("hf-t5-tiny", "T5Model", "T5Config",
               {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4,
                "vocab_size": 1000, **_IDS},
               {**ids16, "decoder_input_ids": ("ids", (2, 8))}, "t5",
               note="learned relative position bias added to the scores as a float mask", tags=_QUICK),
        HFSpec("hf-bart-tiny", "BartModel", "BartConfig", {**_SEQ2SEQ, "max_position_embeddings": 64, **_IDS},
               ids16, "bart", note="decoder inputs shifted from input_ids"),
        HFSpec("hf-vit-tiny", "ViTForImageClassification", "ViTConfig",
               {**_SMALL, "image_size": 32, "patch_size": 8, "num_labels": 10}, {"pixel_values": ("image", (2, 3, 32, 32))},
               "vit"),
        HFSpec("hf-whisper-tiny", "WhisperModel", "WhisperConfig",
               {**_SEQ2SEQ, "num_mel_bins": 16, "max_source_positions": 32, "max_target_positions": 32,
                "decoder_start_token_id": 0, **_IDS},
               {"input_features": ("image", (2, 16, 64)), "decoder_input_ids": ("ids", (2, 8))}, "whisper",
               note="two Conv1d layers over 64 mel frames, then encoder-decoder attention"),
        HFSpec("hf-clip-tiny", "CLIPModel", "CLIPConfig",
               {"text_config": {**_SMALL, "max_position_embeddings": 32, **_IDS},
                "vision_config": {**{k: v for k, v in _SMALL.items() if k != "vocab_size"}, "image_size": 32,
                                  "patch_size": 8},
                "projection_dim": 32},
               {**ids16, "pixel_values": ("image", (2, 3, 32, 32))}, "clip", note="text and vision towers"),
        HFSpec("hf-deberta-v2-tiny", "DebertaV2Model", "DebertaV2Config",
               {**_SMALL, "max_position_embeddings": 64, "relative_attention": True, "pos_att_type": ["p2c", "c2p"]},
               ids16, "deberta", note="disentangled attention (content-to-position and position-to-content "
               "terms); the scores are scaled by sqrt(torch.tensor(head_dim) * 3), a 0-dim tensor"),
        HFSpec("hf-wav2vec2-tiny", "Wav2Vec2Model", "Wav2Vec2Config",
               {**{k: v for k, v in _SMALL.items() if k != "vocab_size"}, "conv_dim": (16, 16), "conv_stride": (5, 2),
                "conv_kernel": (10, 3), "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4},
               {"input_values": ("image", (2, 400))}, "wav2vec2",
               note="a convolutional feature encoder on raw audio, a grouped positional convolution with weight "
               "norm; in train mode LayerDrop (layerdrop=0.1) skips random layers"),
        HFSpec("hf-siglip-tiny", "SiglipModel", "SiglipConfig",
               {"text_config": {**_SMALL, "max_position_embeddings": 16},
                "vision_config": {**{k: v for k, v in _SMALL.items() if k != "vocab_size"}, "image_size": 32,
                                  "patch_size": 8}},
               {**ids16, "pixel_values": ("image", (2, 3, 32, 32))}, "siglip",
               note="a patch embedding with padding='valid' and an attention-pooling head"),
        HFSpec("hf-mamba-tiny", "MambaForCausalLM", "MambaConfig",
               {"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 1000, "state_size": 8, **_IDS},
               ids16, "mamba", note="selective state-space scan, run by its PyTorch reference loop (no CUDA kernels)"),
        HFSpec("hf-mixtral-tiny", "MixtralForCausalLM", "MixtralConfig",
               {**_SMALL, "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2, **_IDS},
               ids16, "mixtral", note="a mixture of experts: 2 of 4 experts per token, run as grouped products "
               "(torch._grouped_mm) over the routed rows"),
        HFSpec("hf-llama-tiny", "LlamaForCausalLM", "LlamaConfig", tiny, {"input_ids": ("ids", (1, 64))}, "llama",
               tiny_macs, tiny_params),
        HFSpec("hf-llama-tiny-eager", "LlamaForCausalLM", "LlamaConfig", {**tiny, "attn_implementation": "eager"},
               {"input_ids": ("ids", (1, 64))}, "llama", tiny_macs, tiny_params),
        # One small config of each further text architecture (the base model, no head), with the attention
        # transformers gives it by default (SDPA, or eager where the model has no SDPA path).
        HFSpec("hf-albert-tiny", "AlbertModel", "AlbertConfig", {**_TEXT, "embedding_size": 64}, ids16, "albert"),
        HFSpec("hf-roberta-tiny", "RobertaModel", "RobertaConfig", {**_TEXT}, ids16, "roberta"),
        HFSpec("hf-distilbert-tiny", "DistilBertModel", "DistilBertConfig", {**_TEXT}, ids16, "distilbert"),
        HFSpec("hf-electra-tiny", "ElectraModel", "ElectraConfig", {**_TEXT, "embedding_size": 64}, ids16, "electra"),
        HFSpec("hf-mobilebert-tiny", "MobileBertModel", "MobileBertConfig",
               {**_TEXT, "embedding_size": 64}, ids16, "mobilebert"),
        HFSpec("hf-opt-tiny", "OPTModel", "OPTConfig", {**_TEXT, "ffn_dim": 128}, ids16, "opt"),
        HFSpec("hf-gpt-neo-tiny", "GPTNeoModel", "GPTNeoConfig",
               {**_TEXT, "num_layers": 2, "num_heads": 4, "attention_types": [[["global", "local"], 1]],
                "window_size": 8, "bos_token_id": 0, "eos_token_id": 0, "attn_implementation": "eager"},
               ids16, "gpt-neo", note="a global and a local (windowed) attention layer"),
        HFSpec("hf-gptj-tiny", "GPTJModel", "GPTJConfig",
               {**_TEXT, "rotary_dim": 8, "bos_token_id": 0, "eos_token_id": 0}, ids16, "gptj"),
        HFSpec("hf-bloom-tiny", "BloomModel", "BloomConfig",
               {**_TEXT, "attn_implementation": "eager"}, ids16, "bloom"),
        HFSpec("hf-falcon-tiny", "FalconModel", "FalconConfig", {**_TEXT, **_GQA}, ids16, "falcon"),
        HFSpec("hf-mistral-tiny", "MistralModel", "MistralConfig",
               {**_TEXT, **_GQA, "head_dim": 16}, ids16, "mistral"),
        HFSpec("hf-qwen2-tiny", "Qwen2Model", "Qwen2Config", {**_TEXT, **_GQA}, ids16, "qwen2"),
        HFSpec("hf-qwen3-tiny", "Qwen3Model", "Qwen3Config", {**_TEXT, **_GQA, "head_dim": 16}, ids16, "qwen3"),
        HFSpec("hf-phi-tiny", "PhiModel", "PhiConfig", {**_TEXT, **_GQA}, ids16, "phi"),
        HFSpec("hf-phi3-tiny", "Phi3Model", "Phi3Config",
               {**_TEXT, **_GQA, "pad_token_id": 0, "eos_token_id": 0}, ids16, "phi3"),
        HFSpec("hf-gemma-tiny", "GemmaModel", "GemmaConfig", {**_TEXT, **_GQA, "head_dim": 16}, ids16, "gemma"),
        HFSpec("hf-gemma2-tiny", "Gemma2Model", "Gemma2Config",
               {**_TEXT, **_GQA, "head_dim": 16, "attn_implementation": "eager"}, ids16, "gemma2"),
        HFSpec("hf-olmo-tiny", "OlmoModel", "OlmoConfig", {**_TEXT, **_GQA, "eos_token_id": 0}, ids16, "olmo"),
        HFSpec("hf-stablelm-tiny", "StableLmModel", "StableLmConfig", {**_TEXT, **_GQA}, ids16, "stablelm"),
        HFSpec("hf-starcoder2-tiny", "Starcoder2Model", "Starcoder2Config",
               {**_TEXT, "bos_token_id": 0, "eos_token_id": 0}, ids16, "starcoder2"),
        HFSpec("hf-granite-tiny", "GraniteModel", "GraniteConfig", {**_TEXT, **_GQA}, ids16, "granite"),
        HFSpec("hf-mpt-tiny", "MptModel", "MptConfig", {**_TEXT, "attn_implementation": "eager"}, ids16, "mpt"),
        HFSpec("hf-codegen-tiny", "CodeGenModel", "CodeGenConfig",
               {**_TEXT, "rotary_dim": 8, "bos_token_id": 0, "eos_token_id": 0}, ids16, "codegen"),
        HFSpec("hf-xlm-roberta-tiny", "XLMRobertaModel", "XLMRobertaConfig", {**_TEXT}, ids16, "xlm-roberta"),
        HFSpec("hf-ernie-tiny", "ErnieModel", "ErnieConfig", {**_TEXT}, ids16, "ernie"),
        HFSpec("hf-megatron-bert-tiny", "MegatronBertModel", "MegatronBertConfig",
               {**_TEXT, "attn_implementation": "eager"}, ids16, "megatron-bert"),
        HFSpec("hf-camembert-tiny", "CamembertModel", "CamembertConfig", {**_TEXT}, ids16, "camembert"),
        HFSpec("hf-convbert-tiny", "ConvBertModel", "ConvBertConfig",
               {**_TEXT, "embedding_size": 64, "attn_implementation": "eager"}, ids16, "convbert"),
        HFSpec("hf-squeezebert-tiny", "SqueezeBertModel", "SqueezeBertConfig",
               {**_TEXT, "embedding_size": 64, "attn_implementation": "eager"}, ids16, "squeezebert"),
        HFSpec("hf-canine-tiny", "CanineModel", "CanineConfig",
               {**_TEXT, "bos_token_id": 0, "eos_token_id": 0, "attn_implementation": "eager"}, ids16, "canine"),
        HFSpec("hf-longformer-tiny", "LongformerModel", "LongformerConfig",
               {**_TEXT, "attn_implementation": "eager"}, ids16, "longformer"),
        HFSpec("hf-big-bird-tiny", "BigBirdModel", "BigBirdConfig",
               {**_TEXT, "attn_implementation": "eager"}, ids16, "big-bird"),
        HFSpec("hf-qwen2-moe-tiny", "Qwen2MoeModel", "Qwen2MoeConfig",
               {**_TEXT, **_GQA, "num_experts": 4, "moe_intermediate_size": 32,
                "shared_expert_intermediate_size": 64},
               ids16, "qwen2-moe"),
        HFSpec("hf-olmoe-tiny", "OlmoeModel", "OlmoeConfig",
               {**_TEXT, **_GQA, "num_experts": 4, "num_experts_per_tok": 2, "eos_token_id": 0}, ids16, "olmoe"),
        HFSpec("hf-gpt-neox-tiny", "GPTNeoXModel", "GPTNeoXConfig", {**_TEXT}, ids16, "gpt-neox"),
        HFSpec("hf-persimmon-tiny", "PersimmonModel", "PersimmonConfig", {**_TEXT}, ids16, "persimmon"),
        HFSpec("hf-cohere-tiny", "CohereModel", "CohereConfig",
               {**_TEXT, **_GQA, "eos_token_id": 0}, ids16, "cohere"),
        HFSpec("hf-qwen3-moe-tiny", "Qwen3MoeModel", "Qwen3MoeConfig",
               {**_TEXT, **_GQA, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32},
               ids16, "qwen3-moe"),
        HFSpec("hf-mamba2-tiny", "Mamba2Model", "Mamba2Config",
               {**_TEXT, "head_dim": 16, "num_heads": 8, "n_groups": 1, "state_size": 16}, ids16, "mamba2"),
        HFSpec("hf-rwkv-tiny", "RwkvModel", "RwkvConfig", {**_TEXT, "attention_hidden_size": 64}, ids16, "rwkv"),
        HFSpec("hf-xglm-tiny", "XGLMModel", "XGLMConfig",
               {**_TEXT, "ffn_dim": 128, "attn_implementation": "eager"}, ids16, "xglm"),
        HFSpec("hf-biogpt-tiny", "BioGptModel", "BioGptConfig", {**_TEXT}, ids16, "biogpt"),
        HFSpec("hf-bert-base", "BertModel", "BertConfig", {}, {"input_ids": ("ids", (1, 128))}, "bert",
               base_macs, base_params, cost="heavy", note="BERT-base at full size"),
        HFSpec("hf-gpt2", "GPT2LMHeadModel", "GPT2Config", {}, {"input_ids": ("ids", (1, 128))}, "gpt2",
               gpt2s_macs, gpt2s_params, cost="heavy", note="GPT-2 small at full size"),
    )


def build(model_class: str, config_class: str, config: tuple[tuple[str, Any], ...]) -> nn.Module:
    """``transformers.<model_class>(<config_class>(use_cache=False, **config))``, offline."""
    offline()
    import transformers

    cfg = getattr(transformers, config_class)(use_cache=False, **dict(config))
    return getattr(transformers, model_class)(cfg)


def _make_inputs(spec: Mapping[str, tuple[str, tuple[int, ...]]], vocab: int) -> Callable[[], ModelInputs]:
    def make() -> ModelInputs:
        kwargs: dict[str, torch.Tensor] = {}
        for name, (kind, shape) in spec.items():
            if kind == "ids":
                kwargs[name] = torch.randint(0, vocab, shape)
            elif kind == "ones":
                kwargs[name] = torch.ones(shape, dtype=torch.long)
            else:
                kwargs[name] = torch.randn(shape)
        return ModelInputs((), kwargs)

    return make


def _vocab(spec: HFSpec) -> int:
    config = spec.config.get("text_config", spec.config)
    default = {"BertConfig": 30522, "GPT2Config": 50257}.get(spec.config_class, 1000)
    return int(config.get("vocab_size", default))


def _text(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_text(v)}" for k, v in value.items()) + "}"
    return repr(value)


def cases() -> list[ModelCase]:
    """One case per spec: id ``hf-<family>...``, tags ``transformers`` and the family."""
    out = []
    for spec in _specs():
        shapes = ", ".join(f"{k} {'x'.join(map(str, s))}" for k, (_kind, s) in spec.inputs.items())
        config = ", ".join(f"{k}={_text(v)}" for k, v in spec.config.items())
        attention = spec.config.get("attn_implementation", "sdpa")
        description = (f"transformers {spec.model_class} from {spec.config_class}({config}), random weights, "
                       f"{attention} attention, inputs {shapes}" + (f"; {spec.note}" if spec.note else ""))
        tags = {"transformers", "attention", spec.family, spec.cost}
        kinds = {"input_ids": "nlp", "pixel_values": "vision", "input_features": "audio", "input_values": "audio"}
        present = {kind for name, kind in kinds.items() if name in spec.inputs}
        tags |= present if len(present) == 1 else {"multimodal"}
        out.append(ModelCase(
            id=spec.id,
            build=functools.partial(build, spec.model_class, spec.config_class, tuple(spec.config.items())),
            make_inputs=_make_inputs(spec.inputs, _vocab(spec)),
            tags=frozenset(tags | spec.tags),
            expected_macs=spec.expected_macs,
            expected_params=spec.expected_params,
            requires=("transformers",),
            description=description,
        ))
    return out
