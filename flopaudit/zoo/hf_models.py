"""Hugging Face transformers built from configs as zoo cases (never ``from_pretrained``).

Small configs (width 64, two layers, a 1000-token vocabulary) keep every
family's code path (BERT, GPT-2, Llama with grouped-query attention, T5,
BART, ViT, Whisper, CLIP, DeBERTa-v2, Wav2Vec2, SigLIP, Mamba, Mixtral, and
one base model of each of 42 more text architectures: encoders such as
ALBERT, RoBERTa, Longformer and BigBird, decoders such as OPT, Falcon,
Mistral, Qwen, Gemma, Phi, their mixtures of experts, Mamba-2 and RWKV;
25 vision architectures, from ConvNeXt and Swin to YOLOS, Hiera and
EfficientNet; 4 speech encoders and 10 encoder-decoders such as mT5,
Pegasus, NLLB-MoE and ProphetNet) while counting in milliseconds; BERT-base and GPT-2
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
_VIT = {k: v for k, v in _SMALL.items() if k != "vocab_size"}  # an image (or audio) encoder's
_HIER = {"depths": [1, 1, 1, 1], "hidden_sizes": [16, 32, 64, 128]}  # four stages, one block each
_WAV2VEC2 = {**_VIT, "conv_dim": (16, 16), "conv_stride": (5, 2), "conv_kernel": (10, 3),
             "num_conv_pos_embeddings": 16, "num_conv_pos_embedding_groups": 4}  # two feature convolutions
_T5 = {"d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_heads": 4, "vocab_size": 1000}
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
    attention: bool = True
    """Tagged ``attention`` (the family its verdict is given in: transformers); False: ``conv``
    (a convnet built with transformers: ResNet, ConvNeXt...)."""


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
    seq2seq = {**ids16, "decoder_input_ids": ("ids", (2, 8))}
    image32, image64 = ({"pixel_values": ("image", (2, 3, size, size))} for size in (32, 64))
    wave = {"input_values": ("image", (2, 400))}
    swin = {"patch_size": 2, "embed_dim": 16, "depths": [1, 1, 1], "num_heads": [2, 2, 4], "window_size": 4}
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
        # One small config of each further vision, audio and encoder-decoder architecture (the base model).
        HFSpec("hf-convnext-tiny", "ConvNextModel", "ConvNextConfig", {**_HIER, "image_size": 32}, image32, "convnext",
               attention=False),
        HFSpec("hf-convnextv2-tiny", "ConvNextV2Model", "ConvNextV2Config", {**_HIER, "image_size": 32}, image32,
               "convnextv2", note="global response normalisation", attention=False),
        HFSpec("hf-swin-tiny", "SwinModel", "SwinConfig", {**swin, "image_size": 32}, image32, "swin",
               note="shifted windows of 4 x 4 patches, a relative position bias table"),
        HFSpec("hf-swinv2-tiny", "Swinv2Model", "Swinv2Config", {**swin, "image_size": 32}, image32, "swinv2",
               note="scaled cosine attention, a continuous position bias MLP"),
        HFSpec("hf-deit-tiny", "DeiTModel", "DeiTConfig", {**_VIT, "image_size": 32, "patch_size": 8}, image32,
               "deit", note="a distillation token beside the class token"),
        HFSpec("hf-beit-tiny", "BeitModel", "BeitConfig",
               {**_VIT, "image_size": 32, "patch_size": 8, "use_relative_position_bias": True}, image32, "beit"),
        HFSpec("hf-dinov2-tiny", "Dinov2Model", "Dinov2Config", {**_VIT, "image_size": 32, "patch_size": 8}, image32,
               "dinov2", note="position embeddings interpolated to the input size, layer scale"),
        HFSpec("hf-vit-mae-tiny", "ViTMAEModel", "ViTMAEConfig",
               {**_VIT, "image_size": 32, "patch_size": 8, "mask_ratio": 0.0}, image32, "vit-mae",
               note="random masking by argsort of noise (ratio 0: every patch kept)"),
        HFSpec("hf-yolos-tiny", "YolosModel", "YolosConfig",
               {**_VIT, "image_size": [32, 32], "patch_size": 8, "num_detection_tokens": 10}, image32, "yolos"),
        HFSpec("hf-vitdet-tiny", "VitDetModel", "VitDetConfig",
               {**_VIT, "image_size": 32, "pretrain_image_size": 32, "patch_size": 8, "window_size": 2,
                "window_block_indices": [0]}, image32, "vitdet", note="windowed attention in the first block"),
        HFSpec("hf-dpt-tiny", "DPTModel", "DPTConfig",
               {**_VIT, "image_size": 32, "patch_size": 8, "neck_hidden_sizes": [16, 32, 64, 64],
                "fusion_hidden_size": 32, "backbone_out_indices": [0, 1]}, image32, "dpt"),
        HFSpec("hf-levit-tiny", "LevitModel", "LevitConfig",
               {"image_size": 64, "hidden_sizes": [32, 48, 64], "num_attention_heads": [2, 2, 2], "depths": [1, 1, 1],
                "key_dim": [8, 8, 8]}, image64, "levit", note="attention with a learned bias, subsampling attention"),
        HFSpec("hf-mobilevit-tiny", "MobileViTModel", "MobileViTConfig",
               {"image_size": 64, "hidden_sizes": [32, 48, 64], "neck_hidden_sizes": [8, 8, 16, 16, 24, 32, 64]},
               image64, "mobilevit", note="inverted residuals, then transformers over unfolded patches"),
        HFSpec("hf-mobilevitv2-tiny", "MobileViTV2Model", "MobileViTV2Config",
               {"image_size": 64, "width_multiplier": 0.5}, image64, "mobilevitv2", note="separable linear attention"),
        HFSpec("hf-poolformer-tiny", "PoolFormerModel", "PoolFormerConfig", {**_HIER}, image32, "poolformer",
               note="average pooling as the token mixer", attention=False),
        HFSpec("hf-pvt-v2-tiny", "PvtV2Model", "PvtV2Config", {**_HIER, "num_attention_heads": [1, 2, 4, 8]},
               image32, "pvt-v2", note="spatial-reduction attention"),
        HFSpec("hf-segformer-tiny", "SegformerModel", "SegformerConfig", {**_HIER, "decoder_hidden_size": 64},
               image32, "segformer", note="overlapping patch embeddings, efficient self-attention"),
        HFSpec("hf-swiftformer-tiny", "SwiftFormerModel", "SwiftFormerConfig",
               {"depths": [1, 1, 1, 1], "embed_dims": [16, 32, 64, 128]}, image32, "swiftformer",
               note="efficient additive attention"),
        HFSpec("hf-focalnet-tiny", "FocalNetModel", "FocalNetConfig",
               {"image_size": 32, "patch_size": 2, "embed_dim": 16, "depths": [1, 1, 1], "focal_levels": [2, 2, 2],
                "focal_windows": [3, 3, 3]}, image32, "focalnet", note="focal modulation in place of attention",
               attention=False),
        HFSpec("hf-cvt-tiny", "CvtModel", "CvtConfig", {"embed_dim": [16, 32, 64], "num_heads": [1, 2, 4],
               "depth": [1, 2, 3]}, image32, "cvt", note="convolutional projections; torch.einsum on a list of "
               "operands"),
        HFSpec("hf-hiera-tiny", "HieraModel", "HieraConfig",
               {"image_size": [64, 64], "embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 4, 8]}, image64,
               "hiera", note="mask unit attention"),
        HFSpec("hf-resnet-tiny", "ResNetModel", "ResNetConfig", {**_HIER, "embedding_size": 16}, image32, "resnet",
               attention=False),
        HFSpec("hf-regnet-tiny", "RegNetModel", "RegNetConfig", {**_HIER, "embedding_size": 16, "groups_width": 8},
               image32, "regnet", attention=False),
        HFSpec("hf-bit-tiny", "BitModel", "BitConfig", {**_HIER, "embedding_size": 16, "num_groups": 8}, image32, "bit",
               note="weight-standardised convolutions, group norm", attention=False),
        HFSpec("hf-efficientnet-tiny", "EfficientNetModel", "EfficientNetConfig",
               {"image_size": 32, "width_coefficient": 0.25, "depth_coefficient": 0.25, "hidden_dim": 320}, image32,
               "efficientnet", attention=False),
        HFSpec("hf-hubert-tiny", "HubertModel", "HubertConfig", _WAV2VEC2, wave, "hubert"),
        HFSpec("hf-wavlm-tiny", "WavLMModel", "WavLMConfig", _WAV2VEC2, wave, "wavlm",
               note="gated relative position bias"),
        HFSpec("hf-sew-d-tiny", "SEWDModel", "SEWDConfig", {**_WAV2VEC2, "squeeze_factor": 2}, wave, "sew-d",
               note="squeezed sequence, DeBERTa-style disentangled attention"),
        HFSpec("hf-wav2vec2-conformer-tiny", "Wav2Vec2ConformerModel", "Wav2Vec2ConformerConfig",
               {**_WAV2VEC2, "conv_depthwise_kernel_size": 7}, wave, "wav2vec2-conformer"),
        HFSpec("hf-mt5-tiny", "MT5Model", "MT5Config", {**_T5, "decoder_start_token_id": 0, **_IDS}, seq2seq, "mt5"),
        HFSpec("hf-longt5-tiny", "LongT5Model", "LongT5Config", {**_T5, "decoder_start_token_id": 0, **_IDS}, seq2seq,
               "longt5", note="local attention in the encoder"),
        HFSpec("hf-switch-transformers-tiny", "SwitchTransformersModel", "SwitchTransformersConfig",
               {**_T5, "num_decoder_layers": 2, "num_experts": 4, "decoder_start_token_id": 0, **_IDS}, seq2seq,
               "switch-transformers", note="top-1 routed experts"),
        HFSpec("hf-pegasus-tiny", "PegasusModel", "PegasusConfig", {**_SEQ2SEQ, "max_position_embeddings": 64, **_IDS},
               seq2seq, "pegasus", note="sinusoidal position embeddings"),
        HFSpec("hf-marian-tiny", "MarianModel", "MarianConfig",
               {**_SEQ2SEQ, "max_position_embeddings": 64, "decoder_start_token_id": 0, **_IDS}, seq2seq, "marian"),
        HFSpec("hf-mbart-tiny", "MBartModel", "MBartConfig", {**_SEQ2SEQ, "max_position_embeddings": 64, **_IDS},
               seq2seq, "mbart"),
        HFSpec("hf-m2m100-tiny", "M2M100Model", "M2M100Config", {**_SEQ2SEQ, "max_position_embeddings": 64, **_IDS},
               seq2seq, "m2m100"),
        HFSpec("hf-nllb-moe-tiny", "NllbMoeModel", "NllbMoeConfig",
               {**_SEQ2SEQ, "max_position_embeddings": 64, "num_experts": 4, "expert_capacity": 8, **_IDS}, seq2seq,
               "nllb-moe", note="top-2 routed experts with a capacity"),
        HFSpec("hf-led-tiny", "LEDModel", "LEDConfig",
               {**_SEQ2SEQ, "max_encoder_position_embeddings": 64, "max_decoder_position_embeddings": 64,
                "attention_window": 8, **_IDS}, seq2seq, "led", note="Longformer's sliding-window attention in the "
               "encoder, torch.einsum on a tuple of operands"),
        HFSpec("hf-prophetnet-tiny", "ProphetNetModel", "ProphetNetConfig",
               {"hidden_size": 64, "num_encoder_layers": 2, "num_decoder_layers": 2, "num_encoder_attention_heads": 4,
                "num_decoder_attention_heads": 4, "encoder_ffn_dim": 128, "decoder_ffn_dim": 128, "vocab_size": 1000,
                "ngram": 2, **_IDS}, seq2seq, "prophetnet", note="n-gram (2) self-attention in the decoder"),
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
        tags = {"transformers", "attention" if spec.attention else "conv", spec.family, spec.cost}
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
