"""The rules of thumb for a training step's FLOPs, written once.

Papers and budgets estimate a training step without counting it. Three
estimates are backends of their own (``flopaudit/adapters/rule_*.py``), each
with a ruleset that explains, cause by cause, how it differs from what the
reference counted (:mod:`flopaudit.reference.backend_rulesets.rules_of_thumb`):

* **3x forward**: backward = 2 x forward, so a step is 3 x the forward
  pass's MACs (the canonical forward count);
* **6·N·D** (Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
  section 2.1): ``C = 6 N D`` FLOPs, ``N`` the non-embedding parameters
  (every parameter except those held by ``nn.Embedding`` modules, as
  Hugging Face's ``num_parameters(exclude_embeddings=True)``: an output
  layer tied to the embedding is excluded with it), ``D`` the tokens of the
  batch: 2 FLOPs per parameter per token forward, 4 backward;
* **Chinchilla** (Hoffmann et al. 2022, "Training Compute-Optimal Large
  Language Models", appendix F, table A4): per sequence of ``L`` tokens,
  forward FLOPs

  - embeddings ``2 L V d``,
  - per layer: key/query/value projections ``2 * 3 L d (k h)``, key @ query
    logits ``2 L L (k h)``, softmax ``3 h L L``, softmax @ value ``2 L L
    (k h)``, output projection ``2 L (k h) d``, dense block ``2 L (d f + d f)``,
  - final logits ``2 L d V``,

  and backward = 2 x forward: a step is 3 x that, for every sequence of the
  batch. ``d`` the model width, ``h`` heads of ``k`` channels, ``f`` the
  feed-forward width, ``V`` the vocabulary, read from the model's Hugging
  Face config.

All are FLOPs (the first reported as MACs); whole-batch MACs are half the
FLOPs, rounded down. :class:`ModelFacts` holds what they read of a model
(:func:`model_facts`, which imports torch); the formulas here are plain
integer arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flopaudit.errors import NotApplicable

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs


@dataclass(frozen=True)
class ChinchillaDims:
    """The dimensions appendix F's formula reads (from a Hugging Face config)."""

    layers: int
    d_model: int
    heads: int
    key_size: int
    ffw_size: int
    vocab: int


@dataclass(frozen=True)
class ModelFacts:
    """What the rules of thumb read of a model and its inputs.

    ``tokens`` and ``seq_len``: the token ids of the input (its
    ``input_ids``, else its first integer tensor of two or more dimensions
    where the model holds an embedding: :func:`token_ids`; ``None`` without one);
    ``params_non_embedding``: :func:`non_embedding_params`; ``dims``: the
    Chinchilla dimensions (``None`` without a config that gives them).
    """

    params_non_embedding: int
    tokens: int | None = None
    seq_len: int | None = None
    dims: ChinchillaDims | None = None
    integer_input: str = ""
    """The shape of an integer input of a batch of sequences not taken as tokens, the model holding
    no embedding (``"2x60"``); ``""`` where there is none or it was taken."""

    @property
    def sequences(self) -> int:
        return (self.tokens or 0) // (self.seq_len or 1)


def kaplan_flops(facts: ModelFacts) -> int:
    """``6 N D`` (Kaplan et al. 2020); :class:`NotApplicable` without token ids."""
    if not facts.tokens:
        raise NotApplicable("6·N·D needs token ids: " + _no_tokens(facts))
    return 6 * facts.params_non_embedding * facts.tokens


def _no_tokens(facts: ModelFacts) -> str:
    if facts.integer_input:
        return (f"the model's integer input ({facts.integer_input}) is not read as tokens: the model holds no "
                "nn.Embedding to look them up (a graph network's edge_index)")
    return "the model takes no integer input of a batch of sequences"


def chinchilla_forward_terms(dims: ChinchillaDims, seq: int) -> dict[str, int]:
    """Appendix F's forward FLOPs of one sequence of ``seq`` tokens, term by term
    (the per-layer terms already multiplied by the number of layers)."""
    kh = dims.key_size * dims.heads
    n = dims.layers
    return {
        "embeddings": 2 * seq * dims.vocab * dims.d_model,
        "kqv": n * 2 * 3 * seq * dims.d_model * kh,
        "logits": n * 2 * seq * seq * kh,
        "softmax": n * 3 * dims.heads * seq * seq,
        "reduction": n * 2 * seq * seq * kh,
        "project": n * 2 * seq * kh * dims.d_model,
        "dense": n * 2 * seq * (dims.d_model * dims.ffw_size + dims.d_model * dims.ffw_size),
        "final_logits": 2 * seq * dims.d_model * dims.vocab,
    }


def chinchilla_flops(facts: ModelFacts) -> int:
    """A training step by appendix F: 3 x the forward FLOPs, for every sequence of the batch;
    :class:`NotApplicable` without the dimensions or token ids."""
    if facts.dims is None:
        raise NotApplicable("the Chinchilla closed form needs a transformer's Hugging Face config "
                            "(layers, width, heads, feed-forward width, vocabulary)")
    if not facts.tokens or not facts.seq_len:
        raise NotApplicable("the Chinchilla closed form needs token ids: " + _no_tokens(facts))
    return 3 * facts.sequences * sum(chinchilla_forward_terms(facts.dims, facts.seq_len).values())


def non_embedding_params(model: nn.Module) -> int:
    """Unique parameters minus those held by ``nn.Embedding``/``nn.EmbeddingBag`` modules
    (a parameter held by several modules belongs to the first that ``named_modules()``
    reaches, as ``named_parameters()`` lists it)."""
    from torch import nn

    total = 0
    seen: set[int] = set()
    for module in model.modules():
        embedding = isinstance(module, (nn.Embedding, nn.EmbeddingBag))
        for p in module._parameters.values():
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                total += 0 if embedding else p.numel()
    return total


def token_ids(inputs: ModelInputs, model: nn.Module | None = None) -> Any:
    """The input's token ids: ``input_ids``, else its first integer tensor of a batch of
    sequences (two dimensions or more; None if none), where ``model`` (if given) holds an
    ``nn.Embedding`` to look them up. A one-dimensional integer input is one number per sample (a
    diffusion model's timestep, a class label), not a sequence of tokens; the integer input of a
    model without an embedding is not tokens either (a graph network's ``edge_index``, 2 x edges)."""
    import torch
    from torch import nn

    def integer(t: Any) -> bool:
        return isinstance(t, torch.Tensor) and not t.is_floating_point() and not t.is_complex() \
            and t.dtype != torch.bool

    named = inputs.kwargs.get("input_ids")
    if integer(named) and named.dim() >= 1:
        return named
    if model is not None and not any(isinstance(m, (nn.Embedding, nn.EmbeddingBag)) for m in model.modules()):
        return None
    return next((t for t in (*inputs.args, *inputs.kwargs.values()) if integer(t) and t.dim() >= 2), None)


def chinchilla_dims(model: nn.Module) -> ChinchillaDims | None:
    """Appendix F's dimensions from ``model.config`` (a Hugging Face config), or None."""
    config = getattr(model, "config", None)
    if config is None:
        return None

    def read(*names: str) -> int | None:
        for name in names:
            value = getattr(config, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
        return None

    layers, d, heads, vocab = (read("num_hidden_layers", "n_layer"), read("hidden_size", "n_embd", "d_model"),
                               read("num_attention_heads", "n_head"), read("vocab_size"))
    if not (layers and d and heads and vocab):
        return None
    key_size = read("head_dim", "kv_channels") or d // heads
    ffw = read("intermediate_size", "n_inner", "ffn_dim", "d_ff") or 4 * d
    return ChinchillaDims(layers, d, heads, key_size, ffw, vocab)


def model_facts(model: nn.Module, inputs: ModelInputs) -> ModelFacts:
    """:class:`ModelFacts` of ``model`` called on ``inputs``."""
    from flopaudit.inputs import shape_text

    ids = token_ids(inputs, model)
    tokens = int(ids.numel()) if ids is not None else None
    seq_len = int(ids.shape[-1]) if ids is not None else None
    unread = token_ids(inputs) if ids is None else None
    return ModelFacts(non_embedding_params(model), tokens, seq_len, chinchilla_dims(model),
                      shape_text(unread.shape) if unread is not None else "")


__all__ = ["ChinchillaDims", "ModelFacts", "chinchilla_dims", "chinchilla_flops", "chinchilla_forward_terms",
           "kaplan_flops", "model_facts", "non_embedding_params", "token_ids"]
