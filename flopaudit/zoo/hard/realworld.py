"""Hard cases for what real models do to counters: train-only branches,
pruned and lazy modules, keyword inputs whose names clash with a counter's
own parameters, packed sequences, TorchScript, work a JIT trace drops, a
learned float attention mask, timm's attention block, a step torchvision
runs as TorchScript only under a trace (batched NMS, box encoding), a size
a trace holds as a tensor (keypoint heatmap targets), and point-cloud
neighbour grouping (``torch.cdist``), a grid cached by feature size that only a
trace makes again, a spatial transformer
(``F.affine_grid``), a graph network on a sparse adjacency (``torch.spmm``) and a
detector's box head (``MultiScaleRoIAlign``, ``torchvision::roi_align``), a
statically quantized residual block (``quantized::conv2d``), a decode step
that appends to the key/value cache it is given and a position table
memoised for the process.

Canonical MACs are the contractions the forward pass runs (``Linear`` as
``N x in x out``, convolutions as in :mod:`flopaudit.zoo.hard.layers`), in
the case's own train/eval mode, whatever a counter does with them: a pruned
weight's zeros are multiplied all the same, discarded work is work done.
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import prune
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from flopaudit.inputs import ModelInputs
from flopaudit.zoo.case import ModelCase
from flopaudit.zoo.hard._common import hard_case, randn_inputs

LINEAR = 16 * 16 + 16  # Linear(16, 16) weights and bias


class AuxHeadNet(nn.Module):
    """A trunk and a head; in training an auxiliary head runs too (GoogLeNet, Inception v3)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Linear(16, 32)
        self.head = nn.Linear(32, 10)
        self.aux = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> Any:
        h = torch.relu(self.trunk(x))
        if self.training:
            return self.head(h), self.aux(h)
        return self.head(h)


class KnnGrouping(nn.Module):
    """Each point's 4 nearest neighbours (``torch.cdist``, ``topk``, ``gather``), their edge features
    ``(neighbour - point, point)`` through a 1x1 convolution, max-pooled over the neighbours."""

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.k = k
        self.edge = nn.Conv2d(6, 16, 1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        b, n, _ = points.shape
        nearest = torch.cdist(points, points).topk(self.k, dim=-1, largest=False).indices
        neighbours = torch.gather(points.unsqueeze(1).expand(b, n, n, 3), 2,
                                  nearest.unsqueeze(-1).expand(b, n, self.k, 3))
        centre = points.unsqueeze(2).expand_as(neighbours)
        edges = torch.cat([neighbours - centre, centre], dim=-1).permute(0, 3, 1, 2)
        return self.edge(edges).amax(dim=-1)


class SpatialTransformer(nn.Module):
    """A spatial transformer network: a localisation net predicts an affine ``theta`` per image,
    ``F.affine_grid`` turns it into sampling positions, ``F.grid_sample`` resamples the input."""

    def __init__(self) -> None:
        super().__init__()
        self.loc = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 6))
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.loc(x).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return self.conv(F.grid_sample(x, grid, align_corners=False))


class SparseGCN(nn.Module):
    """Kipf and Welling's two-layer GCN as their reference code writes it: ``torch.spmm`` of a
    sparse normalised adjacency with the node features each layer has projected."""

    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Linear(16, 16, bias=False)
        self.w2 = nn.Linear(16, 4, bias=False)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        h = F.relu(torch.spmm(adjacency, self.w1(x)))
        return torch.spmm(adjacency, self.w2(h)).log_softmax(-1)


class RoIBoxHead(nn.Module):
    """A two-stage detector's box head as torchvision's Faster R-CNN builds it: two feature
    levels, ``MultiScaleRoIAlign`` (7x7 bins, sampling ratio 2) assigning each box to a level
    by its size, and a ``Linear`` over the pooled features."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.ops import MultiScaleRoIAlign

        self.p2 = nn.Conv2d(3, 8, 3, padding=1)
        self.p3 = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.pool = MultiScaleRoIAlign(["p2", "p3"], 7, 2)
        self.fc = nn.Linear(8 * 7 * 7, 16)

    def forward(self, images: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        p2 = self.p2(images)
        p3 = self.p3(p2)
        pooled = self.pool({"p2": p2, "p3": p3}, [boxes], [tuple(images.shape[-2:])])
        return self.fc(pooled.flatten(1))


def _roi_box_head() -> nn.Module:
    """:class:`RoIBoxHead`, run once: ``MultiScaleRoIAlign`` sets its scales up on its first
    call (as a detector that has seen an image has), so every count sees the same operators."""
    model = RoIBoxHead().eval()
    with torch.no_grad():
        model(*_two_boxes().args)
    return model


def _two_boxes() -> ModelInputs:
    """A 32x32 image and two boxes: a small one (level p2) and a large one (level p3)."""
    return ModelInputs((torch.randn(1, 3, 32, 32), torch.tensor([[2.0, 2.0, 10.0, 12.0], [0.0, 0.0, 30.0, 30.0]])))


class KVCache:
    """A key/value cache as generation loops pass one to every decode step (transformers'
    ``DynamicCache``): keys and values of the tokens so far, which each step appends to."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self.keys, self.values = keys, values

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys = torch.cat([self.keys, k], dim=1)
        self.values = torch.cat([self.values, v], dim=1)
        return self.keys, self.values


class CachedDecodeStep(nn.Module):
    """One decode step of single-head attention: the new token's query, key and value
    (``Linear(16, 16)`` each, no bias), its key and value appended to the cache it is
    given, attention over every cached token, an output ``Linear(16, 16)``."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(width, width, bias=False) for _ in range(4))
        self.scale = width ** -0.5

    def forward(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        keys, values = cache.append(self.k(x), self.v(x))
        scores = torch.softmax(self.q(x) @ keys.transpose(1, 2) * self.scale, dim=-1)
        return self.o(scores @ values)


def _token_and_cache() -> ModelInputs:
    """One new token (1, 1, 16) and a cache of 31 earlier ones: attention over 32."""
    return ModelInputs((torch.randn(1, 1, 16), KVCache(torch.randn(1, 31, 16), torch.randn(1, 31, 16))))


class QuantizableResidual(nn.Module):
    """A residual conv block written for eager-mode static quantization (as torchvision's
    quantizable models are): ``QuantStub``, Conv2d+BatchNorm2d+ReLU and Conv2d+BatchNorm2d
    (fused before quantizing), a 1x1 skip Conv2d, a ``FloatFunctional`` add+ReLU, a global
    average pool, a Linear and ``DeQuantStub``."""

    def __init__(self) -> None:
        super().__init__()
        from torch.ao.nn.quantized import FloatFunctional
        from torch.ao.quantization import DeQuantStub, QuantStub

        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.skip = nn.Conv2d(3, 8, 1)
        self.add = FloatFunctional()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        h = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        h = self.add.add_relu(h, self.skip(x))
        return self.dequant(self.fc(torch.flatten(self.pool(h), 1)))


def _static_quantized() -> nn.Module:
    """:class:`QuantizableResidual` fused, calibrated on random images and converted to int8
    (``torch.ao.quantization`` eager mode, the engine's default qconfig)."""
    from torch.ao import quantization as q

    torch.manual_seed(0)
    model = QuantizableResidual().eval()
    q.fuse_modules(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)
    model.qconfig = q.get_default_qconfig(torch.backends.quantized.engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # observer and reduce_range notices
        q.prepare(model, inplace=True)
        with torch.no_grad():
            model(torch.randn(2, 3, 16, 16))
        q.convert(model, inplace=True)
    return model


def _ring_graph() -> ModelInputs:
    """12 nodes, each joined to itself and its two neighbours on a ring: 36 stored elements."""
    n = 12
    rows = torch.arange(n).repeat_interleave(3)
    cols = torch.stack([torch.arange(n), (torch.arange(n) + 1) % n, (torch.arange(n) - 1) % n], 1).flatten()
    adjacency = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.full((3 * n,), 1 / 3), (n, n)).coalesce()
    return ModelInputs((torch.randn(n, 16), adjacency))


def _pruned() -> nn.Module:
    """Conv2d(3, 8, 3) then Linear(8*6*6, 10), half of each weight pruned (L1, unstructured)."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    prune.l1_unstructured(model[0], "weight", amount=0.5)
    prune.l1_unstructured(model[3], "weight", amount=0.5)
    return model


def _lazy() -> nn.Module:
    """LazyLinear(16) (its input width, 8, is learnt on the first call), ReLU, Linear(16, 4)."""
    return nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, 4))


class ClashingKeywords(nn.Module):
    """``forward(x, model, device, mode, input_data, depth)``: every name one
    of the counters' own entry points also takes (torchinfo's ``summary`` and
    ``forward_pass``), passed as keywords."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.ModuleList(nn.Linear(16, 16) for _ in range(6))

    def forward(self, x: torch.Tensor, model: torch.Tensor, device: torch.Tensor, mode: torch.Tensor,
                input_data: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return sum(fc(t) for fc, t in zip(self.fc, (x, model, device, mode, input_data, depth)))


class PackedLSTM(nn.Module):
    """Packs a padded batch by its lengths, runs LSTM(8, 16) on it, pads the output again."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        return pad_packed_sequence(out, batch_first=True)[0]


def _packed_inputs() -> ModelInputs:
    return ModelInputs((torch.randn(3, 10, 8), torch.tensor([10, 6, 3])))


class _Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def _script(obj: Any) -> Any:
    """``torch.jit.script(obj)`` without its deprecation warning (torch 2.14 deprecates TorchScript,
    which is what users still hand to counters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(obj)


def _scripted_module() -> nn.Module:
    """``torch.jit.script`` of Linear(8, 16), ReLU, Linear(16, 4)."""
    return _script(_Mlp())


def _scripted_convnet() -> nn.Module:
    """``torch.jit.script`` of Conv2d(3, 8, 3, padding=1), ReLU, ConvTranspose2d(8, 4, 2, stride=2)."""
    return _script(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(8, 4, 2, stride=2)))


def _mlp(x: torch.Tensor, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """``relu(x @ w1) @ w2``."""
    return torch.relu(x @ w1) @ w2


@functools.cache
def scripted_mlp() -> Any:
    """:func:`_mlp` compiled by TorchScript (once, when a case first needs it)."""
    return _script(_mlp)


class CallsScriptedFunction(nn.Module):
    """Linear(8, 8), then the scripted ``relu(h @ w1) @ w2`` with w1 (8, 16), w2 (16, 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.w1 = nn.Parameter(torch.randn(8, 16) * 0.1)
        self.w2 = nn.Parameter(torch.randn(16, 4) * 0.1)
        self.mlp = scripted_mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.fc(x), self.w1, self.w2)


def _asks_is_tracing() -> bool:
    """``torch._C._is_tracing()``, asked directly as code written for torch 1.6 asks it
    (asteroid_filterbanks' ``scripting.is_tracing``)."""
    return torch._C._is_tracing()


def _script_if_tracing(fn: Any) -> Any:
    """A library's own copy of ``torch.jit.script_if_tracing`` (asteroid's): ``fn`` runs as written,
    and under a JIT trace is compiled by TorchScript and called compiled."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _asks_is_tracing():
            return fn(*args, **kwargs)
        return _script(fn)(*args, **kwargs)

    return wrapper


@_script_if_tracing
def _filterbank(waveform: torch.Tensor, filters: torch.Tensor, stride: int) -> torch.Tensor:
    """``conv1d`` of a (batch, time) waveform with a bank of 1-channel filters."""
    if waveform.dim() == 2:
        waveform = waveform.unsqueeze(1)
    return F.conv1d(waveform, filters, stride=stride)


class ScriptedWhenTraced(nn.Module):
    """A learned filterbank as asteroid's free encoder computes it: 16 filters of 8 taps (a parameter)
    over a (2, 64) waveform at stride 4, through a function scripted under a trace, then Linear(16, 4)
    over the 15 frames."""

    def __init__(self) -> None:
        super().__init__()
        self.filters = nn.Parameter(torch.randn(16, 1, 8) * 0.1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(_filterbank(x, self.filters, 4).transpose(1, 2))


class DiscardedWork(nn.Module):
    """Computes ``probe(x)`` and throws it away, returns ``head(x)``."""

    def __init__(self) -> None:
        super().__init__()
        self.probe = nn.Linear(16, 16)
        self.head = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _ = self.probe(x)
        return self.head(x)


class FusedInForward(nn.Module):
    """A re-parameterised block, as SPAN's ``Conv3XC`` (spandrel) and RepVGG-style blocks
    write it: trained as Conv2d(4, 8, 1) then Conv2d(8, 4, 3, padding=1); in eval mode each
    forward fuses the two weights into one 3x3 convolution (a convolution of the weights,
    4 x 4 x 3 x 3 outputs of 8 products), writes it into ``fused`` through ``.data`` and runs
    ``fused``. A JIT trace reads ``fused.weight`` as the graph input it was when the trace
    began, so the fusion feeds nothing it keeps."""

    def __init__(self) -> None:
        super().__init__()
        self.expand = nn.Conv2d(4, 8, 1, bias=False)
        self.conv = nn.Conv2d(8, 4, 3, padding=1)
        self.fused = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.conv(self.expand(x))
        w1, w3 = self.expand.weight.data, self.conv.weight.data
        self.fused.weight.data = F.conv2d(w3, w1.permute(1, 0, 2, 3))  # (4, 4, 3, 3): sum over the 8
        self.fused.bias.data = self.conv.bias.data.clone()
        return self.fused(x)


class ReturnsNone(nn.Module):
    """Runs Linear(16, 16), keeps nothing, returns None (a forward used for its side effects)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> None:
        self.fc(x)
        return None


class ReturnsNumbers(nn.Module):
    """Runs Linear(16, 16) and returns plain Python numbers (the top class per row)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> dict[str, list[int]]:
        return {"classes": self.fc(x).argmax(-1).tolist()}


class LearnedMaskAttention(nn.Module):
    """Self-attention through ``F.scaled_dot_product_attention`` with a learned
    float mask (a (heads, L, L) parameter, as T5's relative position bias)."""

    def __init__(self, width: int = 16, heads: int = 4, length: int = 6) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.bias = nn.Parameter(torch.randn(heads, length, length) * 0.1)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        q, k, v = self.qkv(x).reshape(n, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=self.bias)
        return self.out(y.transpose(1, 2).reshape(n, length, width))


class KeepsActivations(nn.Module):
    """Keeps its last activations as a list attribute, as RAFT's correlation
    block keeps ``self.corr_pyramid``: after a forward with autograd on the
    model holds tensors autograd produced, which ``copy.deepcopy`` refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.pyramid: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        self.pyramid = [y, F.avg_pool1d(y[:, None], 2)[:, 0]]
        return y + self.pyramid[1].repeat_interleave(2, dim=1)


class _DistributionHolder:
    """Holds a policy's last action distribution (stable-baselines3's ``CategoricalDistribution``)."""

    def __init__(self) -> None:
        self.distribution: torch.distributions.Categorical | None = None


class KeepsDistribution(nn.Module):
    """A policy head, Linear(8, 4) logits, that keeps its last action distribution in an
    attribute of a plain object, as stable-baselines3's ``ActorCriticPolicy`` keeps
    ``self.action_dist.distribution``, and returns the log-probability of the likeliest
    action: after a forward with autograd on, the model holds non-leaf tensors inside an
    object that is not a module, a list or a dict, which ``copy.deepcopy`` refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.logits = nn.Linear(8, 4)
        self.action_dist = _DistributionHolder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.logits(x)
        self.action_dist.distribution = torch.distributions.Categorical(logits=logits)
        return self.action_dist.distribution.log_prob(logits.argmax(-1))


class _GramCache:
    """A precomputed product that refuses to be copied (``copy.deepcopy`` gives None), as
    gpytorch's prediction strategies do: a copy of the model builds it again."""

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        return None


class CopyDroppedCache(nn.Module):
    """Linear(8, 8) then a product with the (8, 8) Gram matrix of a fixed (16, 8) basis, which
    the model keeps in an attribute once made (made at build time here, as an exact GP makes
    its prediction cache on its first call in eval mode) and makes again when it is missing:
    ``copy.deepcopy`` drops it, so a counter given a copy would count the Gram matrix too."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.register_buffer("basis", torch.randn(16, 8))
        self.cache: _GramCache | None = None
        self.cache = self._gram()

    def _gram(self) -> _GramCache:
        return _GramCache(self.basis.T @ self.basis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.cache is None:
            self.cache = self._gram()
        return self.fc(x) @ self.cache.value


class MemoisedSineTable(nn.Module):
    """Tokens plus a sine position table, then Linear(8, 8). The table is built by a static method
    memoised for the whole process (``functools.lru_cache(maxsize=1)`` keyed on the input's shape,
    as transformers' MaskFormer and DETR build their position embeddings): positions
    (T, 1) times frequencies (1, D), a product of T x D MACs, then ``sin``. A pass with another
    key (a JIT trace's, a backend's own inputs) replaces the one entry, and a copy of the model
    shares it: every count starts with it emptied (:mod:`flopaudit.memos`) and builds the table."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def table(shape: torch.Size) -> torch.Tensor:
        positions = torch.arange(shape[1], dtype=torch.float32).unsqueeze(1)
        frequencies = torch.linspace(0.1, 1.0, shape[2]).unsqueeze(0)
        return torch.sin(positions @ frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x + self.table(x.shape))


def _linear_dropout() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5))


class StdConv2d(nn.Conv2d):
    """A ``Conv2d`` subclass that standardises its weight in ``forward`` (as
    timm's ``StdConv2d``/``ScaledStdConv2d`` do, with ``F.batch_norm`` over
    the weight): counters that match classes with ``isinstance`` price it as
    a convolution, counters that match the exact class do not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0,
                         eps=1e-6).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class TimmStyleLayers(nn.Module):
    """What timm's convnets do beyond torchvision's: a ``Conv2d`` subclass, an
    in-place ``LeakyReLU`` and ``Tensor.repeat`` (XCiT's positional encoding,
    Whisper's attention)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = StdConv2d(3, 8, 3, bias=False)
        self.act = nn.LeakyReLU(0.1, inplace=True)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x)).mean((2, 3))
        return self.head(y.repeat(1, 2))


class BatchedNmsHead(nn.Module):
    """Boxes, scores and labels from three Linear heads, kept by
    ``torchvision.ops.batched_nms``, as a detector's box head does (Keypoint
    R-CNN's, with two classes). For few boxes on the CPU (at most 4,000
    coordinates) ``batched_nms`` shifts each class's boxes apart with one
    multiply per box (its coordinate trick); under a JIT trace it always runs
    that step as a TorchScript function (``torch.jit._script_if_tracing``)."""

    def __init__(self, width: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.box = nn.Linear(width, 4)
        self.score = nn.Linear(width, 1)
        self.label = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import batched_nms

        raw = self.box(x)
        boxes = torch.cat([raw[:, :2], raw[:, :2] + raw[:, 2:].exp()], dim=1)
        scores = self.score(x).sigmoid()[:, 0]
        keep = batched_nms(boxes, scores, self.label(x).argmax(1), 0.5)
        return boxes[keep] * scores[keep, None]


class BoxRegressionLoss(nn.Module):
    """A detector's box-regression loss, as Faster R-CNN's RPN and box head compute it in
    training: a Linear head predicts ``(dx, dy, dw, dh)`` per proposal, the targets are
    torchvision's ``BoxCoder.encode_single`` of the matched ground-truth boxes against the
    proposals, and the loss is their smooth L1 distance. Under a JIT trace ``encode_boxes``
    runs as TorchScript (``torch.jit._script_if_tracing``): one opaque node."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        from torchvision.models.detection._utils import BoxCoder

        self.head = nn.Linear(width, 4)
        self.coder = BoxCoder((10.0, 10.0, 5.0, 5.0))

    def forward(self, features: torch.Tensor, proposals: torch.Tensor, matched: torch.Tensor) -> torch.Tensor:
        targets = self.coder.encode_single(matched, proposals)
        return F.smooth_l1_loss(self.head(features), targets, beta=1 / 9, reduction="sum")


def _box_corners(rows: int, least_side: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Random boxes as ``(x1, y1)`` corners and ``(w, h)`` sizes of at least ``least_side``, (rows, 2) each."""
    return torch.rand(rows, 2) * 100, least_side + torch.rand(rows, 2) * 50


def _proposals_and_matches(rows: int = 12, width: int = 8) -> ModelInputs:
    """Features (rows, width) and two sets of valid boxes (x1 < x2, y1 < y2), (rows, 4) each."""

    def boxes() -> torch.Tensor:
        corner, size = _box_corners(rows, 1)
        return torch.cat([corner, corner + size], dim=1)

    return ModelInputs((torch.randn(rows, width), boxes(), boxes()))


class KeypointHeatmapLoss(nn.Module):
    """Keypoint R-CNN's keypoint loss: a 1x1 convolution predicts one 8x8 heatmap per keypoint
    and proposal, and torchvision's ``keypointrcnn_loss`` puts each ground-truth keypoint in its
    heatmap cell (``keypoints_to_heatmap``: ``heatmap_size / box width``, the size read from the
    logits) and takes the cross entropy. An eager pass divides a Python int by the widths (the
    reciprocal times the int); under a JIT trace the size is a 0-dim tensor: one ``aten::div``."""

    def __init__(self, channels: int = 8, keypoints: int = 3) -> None:
        super().__init__()
        self.head = nn.Conv2d(channels, keypoints, 1)

    def forward(self, features: torch.Tensor, proposals: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        from torchvision.models.detection.roi_heads import keypointrcnn_loss

        matched = torch.arange(proposals.shape[0])  # proposal i is matched to ground truth i
        return keypointrcnn_loss(self.head(features), [proposals], [keypoints], [matched])


def _proposals_and_keypoints(rows: int = 6, channels: int = 8, keypoints: int = 3) -> ModelInputs:
    """Features (rows, channels, 8, 8), proposals (rows, 4) and visible keypoints inside them (rows, keypoints, 3)."""
    corner, size = _box_corners(rows, 10)
    inside = corner[:, None, :] + torch.rand(rows, keypoints, 2) * size[:, None, :]
    points = torch.cat([inside, torch.ones(rows, keypoints, 1)], dim=2)
    return ModelInputs((torch.randn(rows, channels, 8, 8), torch.cat([corner, corner + size], dim=1), points))


def _jagged_tokens() -> ModelInputs:
    """A jagged nested tensor (``layout=torch.jagged``) of three sequences of 3, 5 and 2 tokens of 16 features."""
    return ModelInputs((torch.nested.nested_tensor([torch.randn(n, 16) for n in (3, 5, 2)], layout=torch.jagged),))


def _jagged_token_mlp() -> nn.Module:
    """LayerNorm(16), Linear(16, 32), GELU, Linear(32, 4), applied to every token."""
    return nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4))


class GridDecodeHead(nn.Module):
    """A detection head that decodes cell offsets against a grid of cell positions, made once
    per feature size and kept in a dict keyed on ``(height, width)``, as YOLO's ``Detect`` keeps
    ``self.grid`` and Hugging Face's RT-DETR caches its position tables: a 1x1 convolution
    predicts two offsets per cell, scaled by the stride and added to the grid. The grid for the
    expected size is made at build time (as a model's first call would make it), so an eager
    pass finds it; under a JIT trace the sizes are 0-dim tensors, the dict misses and the trace
    makes the grid again (``arange``, ``meshgrid``, ``stack``, a multiply by the stride)."""

    def __init__(self, channels: int = 8, stride: int = 4, size: tuple[int, int] = (8, 8)) -> None:
        super().__init__()
        self.pred = nn.Conv2d(channels, 2, 1)
        self.stride = stride
        self._grids: dict[Any, torch.Tensor] = {}
        self.grid(*size)

    def grid(self, height: Any, width: Any) -> torch.Tensor:
        key = (height, width)
        found = self._grids.get(key)
        if found is None:
            ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32),
                                    torch.arange(width, dtype=torch.float32), indexing="ij")
            found = self._grids[key] = torch.stack((xs, ys)) * self.stride
        return found

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        return self.pred(x) * self.stride + self.grid(height, width).to(x.device)


class CopiesInForward(nn.Module):
    """Runs copies of its own modules made in the forward (``copy.deepcopy``), as PyTorch's
    model-ensembling recipe copies a member to call it statelessly: ``Linear(32, 16)`` and its
    copy on the input, summed, then a copy of ``block`` (``Linear(16, 16)``, ReLU) and
    ``Linear(16, 8)``. A copy carries the hooks counters put on the module it copies."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(32, 16)
        self.block = nn.Sequential(nn.Linear(16, 16), nn.ReLU())
        self.head = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        twin = copy.deepcopy(self.fc)
        return self.head(copy.deepcopy(self.block)(twin(x) + self.fc(x)))


class ScalarTensorScale(nn.Module):
    """Linear(16, 16), its output divided by ``sqrt(tensor(width) * 3)``, a
    scale computed as a 0-dim tensor from a size, as DeBERTa-v2's attention
    does (``torch.sqrt(torch.tensor(q.size(-1), dtype=torch.float) * scale_factor)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sqrt(torch.tensor(x.size(-1), dtype=torch.float) * 3)
        return self.fc(x) / scale


class TensorSizedPaddedConv(nn.Module):
    """EnCodec's ``EncodecConv1d`` (also Mimi's and DAC's padded convolutions) in miniature:
    Conv1d(2, 4, 7, stride=2) whose stride, kernel size and total padding are 0-d int64 tensor
    buffers; the extra right padding that makes the last window whole is computed from them
    (``ceil`` of a tensor division), then the input is reflect-padded causally (all the
    kernel's padding on the left) and convolved."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 7, stride=2)
        stride = torch.tensor(2, dtype=torch.int64)
        kernel_size = torch.tensor(7, dtype=torch.int64)
        self.stride = nn.Buffer(stride, persistent=False)
        self.kernel_size = nn.Buffer(kernel_size, persistent=False)
        self.padding_total = nn.Buffer(kernel_size - stride, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        frames = (length - self.kernel_size + self.padding_total) / self.stride + 1
        frames = torch.ceil(frames).to(torch.int64) - 1
        extra = frames * self.stride + self.kernel_size - self.padding_total - length
        return self.conv(F.pad(x, (int(self.padding_total), int(extra)), mode="reflect"))


def _timm_attention() -> nn.Module:
    """timm's ``Attention(dim=32, num_heads=4, qkv_bias=True)`` block (the ViT family's)."""
    from flopaudit.zoo.optional import offline

    offline()
    from timm.layers import Attention

    return Attention(32, num_heads=4, qkv_bias=True)


class ModulatedDeformable(nn.Module):
    """A modulated deformable convolution (DCNv2), as detection backbones use them: a
    ``Conv2d(4, 18, 3)`` predicts an offset per kernel tap, a ``Conv2d(4, 9, 3)`` and a sigmoid a
    mask, and ``torchvision.ops.DeformConv2d(4, 8, 3)`` samples its input there."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.ops import DeformConv2d

        self.offset = nn.Conv2d(4, 2 * 9, 3, padding=1)
        self.mask = nn.Conv2d(4, 9, 3, padding=1)
        self.conv = DeformConv2d(4, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x, self.offset(x), torch.sigmoid(self.mask(x)))


class GroupedExperts(nn.Module):
    """A mixture-of-experts MLP run as transformers 5 runs its experts (``grouped_mm``): a router
    ``Linear(16, 4)`` picks 2 of 4 experts per token, the routed rows are sorted by expert,
    ``torch.histc`` counts them, and two ``torch._grouped_mm`` products (up 16 -> 32, ReLU, down
    32 -> 16) run each expert on its rows; the rows are put back and summed with their weights."""

    def __init__(self) -> None:
        super().__init__()
        self.router = nn.Linear(16, 4, bias=False)
        self.up = nn.Parameter(torch.randn(4, 16, 32) * 0.1)
        self.down = nn.Parameter(torch.randn(4, 32, 16) * 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.reshape(-1, 16)
        weights, experts = torch.topk(self.router(tokens).softmax(-1), 2, dim=-1)
        flat = experts.reshape(-1)
        order = flat.argsort()
        rows = tokens.repeat_interleave(2, dim=0)[order]
        offs = torch.histc(flat.float(), bins=4, min=0, max=3).cumsum(0).to(torch.int32)
        hidden = torch.relu(torch._grouped_mm(rows, self.up, offs=offs))
        out = torch._grouped_mm(hidden, self.down, offs=offs)[order.argsort()] * weights.reshape(-1, 1)
        return out.view(-1, 2, 16).sum(1).view(x.shape)


class SparseDeltaLinear(nn.Module):
    """A linear layer whose weight gets a sparse update as peft's ShiRA adapter applies one: a
    (32, 32) weight plus a sparse COO delta of 64 trainable values at fixed positions, added in
    place to a copy (``weight += delta``) and out of place (``weight + delta``), each weight then
    used by ``F.linear``."""

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(32, 32, generator=generator) * 0.1)
        self.register_buffer("positions", torch.randint(0, 32, (2, 64), generator=generator))
        self.values = nn.Parameter(torch.randn(64, generator=generator) * 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = torch.sparse_coo_tensor(self.positions, self.values, self.weight.shape)
        updated = self.weight.clone()
        updated += delta
        return F.linear(x, updated) + F.linear(x, self.weight + delta)


class LogMelFrontEnd(nn.Module):
    """An audio classifier's front end as speech models compute it: ``torch.stft`` of the
    waveform (n_fft 64, hop 16, a Hann window), the power spectrum, an (8, 33) mel filter bank
    applied with ``@``, a log, then Conv1d(8, 16, 3), ReLU, a mean over time and
    Linear(16, 4). A JIT trace holds the STFT as one ``aten::stft`` node, where a dispatch mode
    sees the window multiply and the FFT it decomposes into."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(64))
        self.register_buffer("mel", torch.rand(8, 33))
        self.conv = nn.Conv1d(8, 16, 3, padding=1)
        self.head = nn.Linear(16, 4)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wav, 64, 16, window=self.window, return_complex=True)
        mel = torch.log(self.mel @ (spec.abs() ** 2) + 1e-6)
        return self.head(torch.relu(self.conv(mel)).mean(-1))


class InferenceModeTeacher(nn.Module):
    """Distillation as it is written with a frozen teacher: the teacher (Linear(16, 32), ReLU,
    Linear(32, 8)) and a projection of its output (``torch.matmul`` of the (4, 6, 8) logits with a
    (8, 8) weight) run inside ``torch.inference_mode()``, so autograd does not decompose
    ``F.linear`` and ``torch.matmul``: they reach a dispatch mode whole. The student
    (Linear(16, 8)) runs outside; the output is the squared distance between the two, summed."""

    def __init__(self) -> None:
        super().__init__()
        self.teacher = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 8))
        self.student = nn.Linear(16, 8)
        self.project = nn.Parameter(torch.randn(8, 8) / 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            t = torch.matmul(self.teacher(x), self.project)
        s = self.student(x)
        return ((s - t.clone()) ** 2).sum()


class InferenceModeBackbone(nn.Module):
    """A frozen conv backbone run inside ``torch.inference_mode()`` (Conv2d(3, 8, 3), BatchNorm2d,
    ReLU, GroupNorm(2, 8), global average pool) and a Linear(8, 4) head outside: there autograd
    does not decompose ``aten.conv2d``, ``aten.batch_norm`` or ``aten.group_norm``, so a dispatch
    mode receives them whole."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.GroupNorm(2, 8), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            features = self.backbone(x)
        return self.head(features.clone())


class _Magnitude(nn.Module):
    """DoRA's magnitude layer as peft writes it (``DoraLinearLayer``): a leaf module that holds
    only the magnitude vector and calls the adapter's ``lora_A`` and ``lora_B``, passed in, on an
    identity matrix (their product, for the column norms) and on the input."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(features))

    def forward(self, x: torch.Tensor, base_weight: torch.Tensor, lora_a: nn.Module, lora_b: nn.Module,
                base_result: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(base_weight.shape[1], dtype=x.dtype, device=x.device)
        delta = lora_b(lora_a(eye)).T
        scale = self.weight / (base_weight + delta.detach()).norm(p=2, dim=1)
        return (scale - 1) * base_result + scale * lora_b(lora_a(x))


class CallsSiblingModules(nn.Module):
    """A DoRA-adapted Linear(16, 16): the base layer, a rank-4 ``lora_A``/``lora_B`` pair and the
    magnitude layer beside them, which calls the pair itself (peft's ``use_dora=True``)."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(16, 16)
        self.lora_A = nn.Linear(16, 4, bias=False)
        self.lora_B = nn.Linear(4, 16, bias=False)
        self.magnitude = _Magnitude(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.magnitude(x, self.base.weight, self.lora_A, self.lora_B, self.base(x))


class _InfShape:
    """What muP's ``set_base_shapes`` stores on a parameter (``mup.infshape.InfShape``), reduced to
    the one number its readout layer asks for."""

    def __init__(self, base_width: int, width: int) -> None:
        self.base_width, self.width = base_width, width

    def width_mult(self) -> float:
        return self.width / self.base_width


class _MuReadout(nn.Linear):
    """muP's output layer (``mup.MuReadout``): a Linear on the input divided by the width
    multiplier it reads from its weight's ``infshape``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x / self.weight.infshape.width_mult())


class ParameterAttributes(nn.Module):
    """Linear(16, 32), ReLU and muP's readout Linear(32, 4), whose weight carries the ``infshape``
    attribute that ``mup.set_base_shapes`` sets (base width 8)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(16, 32)
        self.readout = _MuReadout(32, 4)
        self.readout.weight.infshape = _InfShape(8, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(torch.relu(self.body(x)))


class _Solve(torch.autograd.Function):
    """Two steps of ``y <- y @ w`` solved under ``no_grad`` into a (3, *y.shape) solution buffer,
    its gradient by the adjoint recurrence, as torchdiffeq's ``odeint_adjoint`` solves an ODE."""

    @staticmethod
    def forward(ctx: Any, y0: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            solution = torch.empty(3, *y0.shape, dtype=y0.dtype, device=y0.device)
            solution[0] = y0
            for i in (1, 2):
                solution[i] = solution[i - 1] @ w
        ctx.save_for_backward(solution, w)
        return solution

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        solution, w = ctx.saved_tensors
        a2 = grad[2]
        a1 = grad[1] + a2 @ w.T
        return grad[0] + a1 @ w.T, solution[0].T @ a1 + solution[1].T @ a2


class AdjointSolver(nn.Module):
    """A linear flow ``y <- y @ w`` (w: 8 x 8) solved for two steps inside a custom autograd Function
    (torchdiffeq's ``odeint_adjoint``), then a Linear(8, 2) head on the last state."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.eye(8) + 0.1 * torch.randn(8, 8))
        self.head = nn.Linear(8, 2)

    def forward(self, y0: torch.Tensor) -> torch.Tensor:
        return self.head(_Solve.apply(y0, self.w)[-1])


class NumpyHyperParameters(nn.Module):
    """Conv2d(3, 8, 3, stride 2, padding 1) whose kernel size, stride and padding are numpy integers
    (pytorchvideo computes its convolutions' strides with numpy), global average pool, Linear(8, 4)."""

    def __init__(self) -> None:
        import numpy as np

        super().__init__()
        three, two, one = np.int64(3), np.int64(2), np.int64(1)
        self.conv = nn.Conv2d(3, 8, kernel_size=(three, three), stride=(two, two), padding=(one, one))
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x).mean((2, 3)))


class PrintsTensors(nn.Module):
    """Linear(16, 40), its output printed, the (40, 40) Gram matrix of its columns formatted into
    a log line (more than 1000 elements: torch prints three rows and columns at each end) and
    the count of positive entries per column repr'd (an integer tensor): debugging left in a
    forward, or an error message built before its check (transformers' VITS)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 40)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc(x)
        print("activations", h)
        gram = h.T @ h
        self.last_log = f"gram {gram}; positive per column {(h > 0).sum(0)!r}"
        return gram


class HookAdapter(nn.Module):
    """A frozen-style Linear(16, 16) with a rank-2 adapter added by a forward hook written as a
    closure over the model (hook-based adapter libraries), ReLU, and a Linear(16, 3) head whose
    forward pre-hook layer-normalises its input."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Linear(16, 16)
        self.down = nn.Linear(16, 2, bias=False)
        self.up = nn.Linear(2, 16, bias=False)
        self.head = nn.Linear(16, 3)
        self.base.register_forward_hook(lambda module, args, out: out + self.up(self.down(args[0])))
        self.head.register_forward_pre_hook(lambda module, args: (F.layer_norm(args[0], (16,)),))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.base(x)))


class MomentumEncoder(nn.Module):
    """MoCo: a query encoder (Linear(8, 32), ReLU, Linear(32, 16)), a key encoder of the same
    shape that follows it by a momentum update written as ``param_k.data = param_k.data * m +
    param_q.data * (1 - m)`` (MoCo's own code) in every forward, and a queue of 32 keys that the
    forward writes its keys into (``queue[:, ptr:ptr + n] = keys.T``, ``ptr`` advanced)."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))
        self.k = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 16))
        self.k.load_state_dict(self.q.state_dict())
        for p in self.k.parameters():
            p.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(16, 32), dim=0))
        self.register_buffer("ptr", torch.zeros(1, dtype=torch.long))

    def forward(self, im_q: torch.Tensor, im_k: torch.Tensor) -> torch.Tensor:
        q = F.normalize(self.q(im_q), dim=1)
        with torch.no_grad():
            for param_q, param_k in zip(self.q.parameters(), self.k.parameters()):
                param_k.data = param_k.data * 0.99 + param_q.data * 0.01
            k = F.normalize(self.k(im_k), dim=1)
        positive = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)
        negative = torch.einsum("nc,ck->nk", q, self.queue.clone().detach())
        with torch.no_grad():
            start = int(self.ptr)
            self.queue[:, start:start + k.shape[0]] = k.T
            self.ptr[0] = (start + k.shape[0]) % self.queue.shape[1]
        return torch.cat([positive, negative], dim=1) / 0.07


def _two_views() -> ModelInputs:
    return ModelInputs((torch.randn(4, 8), torch.randn(4, 8)))


class _ActNorm(nn.Module):
    """Glow's ActNorm as many implementations write it: a plain Python flag, and a first forward
    that sets ``loc`` and ``logs`` from the batch's statistics (data-dependent initialisation)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(1, features))
        self.logs = nn.Parameter(torch.zeros(1, features))
        self.initialized = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.initialized:
            with torch.no_grad():
                self.loc.data.copy_(-x.mean(0, keepdim=True))
                self.logs.data.copy_(-torch.log(x.std(0, keepdim=True) + 1e-6))
            self.initialized = True
        return (x + self.loc) * torch.exp(self.logs)


class FirstCallInit(nn.Module):
    """ActNorm(8) with a data-dependent first call, then Linear(8, 8); the forward also counts its
    calls in a plain attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = _ActNorm(8)
        self.fc = nn.Linear(8, 8)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(self.norm(x))


class CsrGraphPropagation(nn.Module):
    """PyG's sparse CSR path: GraphUNet pools on the square of its adjacency kept sparse
    (``adj @ adj``, a product of two CSR tensors), and a GCN propagates with
    ``adj_t @ (x W)`` (PyG's ``spmm`` of a ``torch.sparse_csr`` adjacency)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Linear(16, 8, bias=False)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        two_hop = adjacency @ adjacency
        return two_hop @ (adjacency @ self.w(x))


def _ring_graph_csr() -> ModelInputs:
    """:func:`_ring_graph` with its adjacency in CSR (what PyG's ``to_torch_csr_tensor`` makes)."""
    x, adjacency = _ring_graph().args
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return ModelInputs((x, adjacency.to_sparse_csr()))


class HoldsUncopyables(nn.Module):
    """A layer serving requests from several threads: it holds a lock its forward takes, and a
    Python module object it reads a constant from (``copy.deepcopy`` refuses both:
    "cannot pickle '_thread.lock' object", "cannot pickle 'module' object")."""

    def __init__(self) -> None:
        import math
        import threading

        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.lock = threading.Lock()
        self.maths = math

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.fc(x) * self.maths.sqrt(2.0)


class CallsForwardDirectly(nn.Module):
    """Layers run through ``layer.forward(x)`` rather than ``layer(x)``, as hand-written models
    sometimes do: ``forward`` is then a plain method call, so no module hook fires for the layer
    (its work runs as the caller's own, as a functional call would), while the last layer is
    called as usual."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv.forward(x).relu().mean((2, 3))
        return self.fc2(self.fc1.forward(x))


class IdentityCheckedWeight(torch.Tensor):
    """A quantized weight's class as optimum-quanto writes it: its ``__torch_function__`` runs
    its own kernel (here a dequantising scale, then ``torch.matmul``) only when ``func is
    torch.nn.functional.linear``, looked up when called, and defers everything else: a counter
    that wraps ``F.linear`` makes the model take the other path."""

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.nn.functional.linear:
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            with torch._C.DisableTorchFunctionSubclass():
                out = torch.matmul(x, weight.t() * 1.0)
                return out if bias is None else out + bias
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **kwargs)


class IdentityCheckedLinear(nn.Module):
    """``F.linear`` of an :class:`IdentityCheckedWeight` (a buffer, as a frozen quantized weight) and a bias."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.randn(outputs, inputs).as_subclass(IdentityCheckedWeight))
        self.bias = nn.Parameter(torch.zeros(outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


def _identity_checked_mlp() -> nn.Module:
    return nn.Sequential(IdentityCheckedLinear(8, 16), nn.ReLU(), IdentityCheckedLinear(16, 4))


class PackingState:
    """What a quantized weight's kernel reads of its layout (bitsandbytes' ``QuantState``)."""

    def __init__(self) -> None:
        self.packed = False


class RepacksWeightOnFirstCall(nn.Module):
    """A layer that repacks its weight for its CPU kernel on its first call, as bitsandbytes'
    ``Linear4bit`` does in eval mode: ``weight.data`` gets the new layout and the state object
    the parameter holds says so (``weight.quant_state.packing_format_for_cpu``); later calls
    read the packed layout."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 16))
        self.weight.state = PackingState()  # type: ignore[attr-defined]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self.weight.state  # type: ignore[attr-defined]
        if not state.packed:
            with torch.no_grad():
                self.weight.data = self.weight.data.t().contiguous()  # (in, out): the kernel's layout
            state.packed = True
        return x @ self.weight


def _repacking_block() -> nn.Module:
    return nn.Sequential(RepacksWeightOnFirstCall(), nn.ReLU())


def cases() -> list[ModelCase]:
    out = [
        hard_case(
            "train-aux-head",
            AuxHeadNet,
            randn_inputs((4, 16)),
            {"control-flow", "train-mode", "linear"},
            # in train mode: trunk 4 x 16 x 32 + head 4 x 32 x 10 + aux 4 x 32 x 10
            expected_macs=4 * 16 * 32 + 2 * (4 * 32 * 10),
            expected_params=16 * 32 + 32 + 2 * (32 * 10 + 10),
            description="in train mode an auxiliary head runs beside the main one (GoogLeNet, Inception v3); "
            "counters that call model.eval() themselves (thop, ptflops) leave it out. Given in train mode, on (4, 16)",
            train=True,
        ),
        hard_case(
            "stft-log-mel",
            LogMelFrontEnd,
            randn_inputs((2, 1600)),
            {"conv", "linear", "functional", "matmul"},
            # 101 frames (1600 / 16 + 1): mel 2 x 8 x 33 x 101 + conv 2 x 16 x 101 x 8 x 3 + head 2 x 16 x 4;
            # the FFT is extra FLOPs, not multiply-accumulates of a product
            expected_macs=2 * 8 * 33 * 101 + 2 * 16 * 101 * 8 * 3 + 2 * 16 * 4,
            expected_params=16 * 8 * 3 + 16 + 16 * 4 + 4,
            description="a log-mel front end on a (2, 1600) waveform: torch.stft (n_fft 64, hop 16, Hann window), "
            "power, an (8, 33) mel bank by @, log, Conv1d(8, 16, 3), ReLU, mean over time, Linear(16, 4): a "
            "trace holds the STFT as one aten::stft node",
        ),
        hard_case(
            "inference-mode-teacher",
            InferenceModeTeacher,
            randn_inputs((4, 6, 16)),
            {"linear", "functional", "matmul"},
            # teacher 24 tokens x (16 x 32 + 32 x 8), projection 24 x 8 x 8, student 24 x 16 x 8
            expected_macs=24 * (16 * 32 + 32 * 8) + 24 * 8 * 8 + 24 * 16 * 8,
            expected_params=16 * 32 + 32 + 32 * 8 + 8 + 16 * 8 + 8 + 8 * 8,
            description="a frozen teacher (Linear(16, 32), ReLU, Linear(32, 8)) and a torch.matmul projection of "
            "its output by an (8, 8) matrix inside torch.inference_mode(), a Linear(16, 8) student outside, on "
            "(4, 6, 16): under inference mode "
            "F.linear and torch.matmul reach a dispatch mode whole, not as the mm/addmm autograd splits them into",
        ),
        hard_case(
            "inference-mode-backbone",
            InferenceModeBackbone,
            randn_inputs((2, 3, 8, 8)),
            {"conv", "norm", "linear"},
            expected_macs=2 * 8 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 4,  # conv N x Cout x H x W x Cin x 3 x 3 + head
            expected_params=8 * 3 * 3 * 3 + 8 + 2 * 8 + 2 * 8 + 8 * 4 + 4,
            description="a frozen backbone (Conv2d(3, 8, 3), BatchNorm2d, ReLU, GroupNorm(2, 8), global pool) "
            "inside torch.inference_mode() and a Linear(8, 4) head outside, on (2, 3, 8, 8): there a dispatch "
            "mode receives aten.conv2d, aten.batch_norm and aten.group_norm whole",
        ),
        hard_case(
            "pruned-conv-linear",
            _pruned,
            randn_inputs((2, 3, 8, 8)),
            {"pruned", "conv", "linear"},
            # conv N x Cout x 6 x 6 x Cin x 3 x 3 + linear N x 288 x 10: pruned zeros are still multiplied
            expected_macs=2 * 8 * 6 * 6 * 3 * 3 * 3 + 2 * 288 * 10,
            expected_params=8 * 3 * 3 * 3 + 8 + 288 * 10 + 10,  # weight_orig + bias: the masks are buffers
            description="Conv2d(3, 8, 3) and Linear(288, 10) with half their weights pruned by "
            "torch.nn.utils.prune (weight_orig parameters, weight_mask buffers, weight recomputed in a "
            "forward pre-hook), on (2, 3, 8, 8)",
        ),
        hard_case(
            "lazy-linear",
            _lazy,
            randn_inputs((2, 8)),
            {"lazy", "linear"},
            expected_macs=2 * 8 * 16 + 2 * 16 * 4,
            expected_params=8 * 16 + 16 + 16 * 4 + 4,  # once materialised
            description="nn.LazyLinear(16) (input width learnt on the first call), ReLU, Linear(16, 4), on (2, 8). "
            "An uninitialised lazy module is materialised by the first forward pass, so each backend counts a "
            "copy; `flopaudit run` times a forward pass first, so there the backends see it materialised",
        ),
        hard_case(
            "kwargs-clashing-names",
            ClashingKeywords,
            randn_inputs(**{name: (4, 16) for name in ("x", "model", "device", "mode", "input_data", "depth")}),
            {"kwargs", "linear"},
            expected_macs=6 * (4 * 16 * 16),
            expected_params=6 * LINEAR,
            description="forward(x, model, device, mode, input_data, depth), all six (4, 16) tensors passed as "
            "keywords: names torchinfo's summary() and forward_pass() also take",
        ),
        hard_case(
            "lstm-packed-sequence",
            PackedLSTM,
            _packed_inputs,
            {"rnn", "packed"},
            # the LSTM runs on the real steps only: (10 + 6 + 3) x 4 gates x H 16 x (I 8 + H 16)
            expected_macs=(10 + 6 + 3) * 4 * 16 * (8 + 16),
            expected_params=4 * 16 * (8 + 16) + 2 * 4 * 16,
            description="LSTM(8, 16) on a PackedSequence packed inside forward from a padded (3, 10, 8) batch "
            "of lengths 10, 6, 3 (19 real steps of 30)",
        ),
        hard_case(
            "scripted-module",
            _scripted_module,
            randn_inputs((2, 8)),
            {"torchscript", "linear"},
            expected_macs=2 * 8 * 16 + 2 * 16 * 4,
            expected_params=8 * 16 + 16 + 16 * 4 + 4,
            description="torch.jit.script of Linear(8, 16), ReLU, Linear(16, 4) on (2, 8): a ScriptModule refuses "
            "module hooks, which hook-based counters and fvcore's trace register",
        ),
        hard_case(
            "scripted-convnet",
            _scripted_convnet,
            randn_inputs((2, 3, 8, 8)),
            {"torchscript", "conv"},
            # Conv2d 2 x 8 x 8 x 8 x 3 x 3 x 3; ConvTranspose2d 2 x 8 x 8 x 8 (input) x 4 x 2 x 2
            expected_macs=2 * 8 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 8 * 8 * 4 * 2 * 2,
            expected_params=8 * 3 * 9 + 8 + 8 * 4 * 4 + 4,
            description="torch.jit.script of Conv2d(3, 8, 3, padding=1), ReLU, ConvTranspose2d(8, 4, 2, stride=2) "
            "on (2, 3, 8, 8), as a model deployed as TorchScript is: the interpreter calls aten::conv2d where "
            "Python code calls F.conv2d (torch.profiler prices it), a JIT trace's graph aten::_convolution",
        ),
        hard_case(
            "scripted-function",
            CallsScriptedFunction,
            randn_inputs((2, 8)),
            {"torchscript", "functional", "linear"},
            expected_macs=2 * 8 * 8 + 2 * 8 * 16 + 2 * 16 * 4,
            expected_params=8 * 8 + 8 + 8 * 16 + 16 * 4,
            description="Linear(8, 8) then a torch.jit.script function relu(h @ w1) @ w2 (w1 8x16, w2 16x4), on "
            "(2, 8): a JIT trace records the call as one prim::CallFunction",
        ),
        hard_case(
            "scripted-when-traced",
            ScriptedWhenTraced,
            randn_inputs((2, 64)),
            {"torchscript", "functional", "conv", "linear"},
            expected_macs=2 * 16 * 15 * 8 + 2 * 15 * 16 * 4,  # the filterbank's 15 frames, then the Linear
            expected_params=16 * 8 + 16 * 4 + 4,
            description="a learned filterbank, F.conv1d of a (2, 64) waveform with 16 filters of 8 taps at stride "
            "4, in a function compiled by TorchScript when called under a JIT trace (asteroid's copy of "
            "script_if_tracing, asking torch._C._is_tracing()), then Linear(16, 4) over the frames: a JIT trace "
            "records the filterbank as one prim::CallFunction",
        ),
        hard_case(
            "discarded-output",
            DiscardedWork,
            randn_inputs((4, 16)),
            {"dead-code", "linear"},
            expected_macs=2 * (4 * 16 * 16),  # probe's work is done, then dropped
            expected_params=2 * LINEAR,
            description="computes Linear(16, 16)(x) and discards it, returns another Linear(16, 16)(x), on (4, 16): "
            "a JIT trace drops the discarded work",
        ),
        hard_case(
            "fused-in-forward",
            FusedInForward,
            randn_inputs((2, 4, 8, 8)),
            {"dead-code", "conv"},
            # the fused conv 2 x 4 x 8 x 8 x 4 x 3 x 3; the fusion 4 x 4 x 3 x 3 x 8
            expected_macs=2 * 4 * 8 * 8 * 4 * 9 + 4 * 4 * 9 * 8,
            expected_params=8 * 4 + (4 * 8 * 9 + 4) + (4 * 4 * 9 + 4),
            description="a 1x1 then 3x3 conv branch fused in every eval forward into one 3x3 Conv2d(4, 4) "
            "through weight.data = F.conv2d(...) (SPAN's Conv3XC in spandrel), on (2, 4, 8, 8): a JIT trace "
            "reads the parameter as the pass began and drops the fusion",
        ),
        hard_case(
            "returns-none",
            ReturnsNone,
            randn_inputs((4, 16)),
            {"dead-code", "no-tensor-output", "linear"},
            expected_macs=4 * 16 * 16,
            expected_params=LINEAR,
            description="runs Linear(16, 16) on (4, 16) and returns None: a JIT trace keeps nothing",
        ),
        hard_case(
            "returns-numbers",
            ReturnsNumbers,
            randn_inputs((4, 16)),
            {"dead-code", "no-tensor-output", "linear"},
            expected_macs=4 * 16 * 16,
            expected_params=LINEAR,
            description="runs Linear(16, 16) on (4, 16) and returns {'classes': [ints]}: no tensor in the output",
        ),
        hard_case(
            "sdpa-learned-float-mask",
            LearnedMaskAttention,
            randn_inputs((2, 6, 16)),
            {"attention", "functional"},
            # qkv 2 x 6 x 16 x 48 + scores and weighted sum 2 x (2 x 4 x 6 x 6 x 4) + out 2 x 6 x 16 x 16
            expected_macs=2 * 6 * 16 * 48 + 2 * (2 * 4 * 6 * 6 * 4) + 2 * 6 * 16 * 16,
            expected_params=16 * 48 + 48 + 4 * 6 * 6 + 16 * 16 + 16,
            description="F.scaled_dot_product_attention with a learned float mask (a (4, 6, 6) parameter added "
            "to the scores, as T5's position bias) on (2, 6, 16): with autograd on, torch runs the math "
            "decomposition (bmm, softmax) instead of the fused kernel",
        ),
        hard_case(
            "keeps-activations",
            KeepsActivations,
            randn_inputs((4, 16)),
            {"linear", "state"},
            expected_macs=4 * 16 * 16,
            expected_params=LINEAR,
            description="Linear(16, 16) on (4, 16) that keeps its output and a pooled copy as a list attribute "
            "(self.pyramid = [...], as RAFT's correlation block does): a model that has run with autograd on "
            "holds non-leaf tensors, and each backend still counts a copy of it",
        ),
        hard_case(
            "keeps-distribution",
            KeepsDistribution,
            randn_inputs((4, 8)),
            {"linear", "state"},
            expected_macs=4 * 8 * 4,
            expected_params=8 * 4 + 4,
            description="Linear(8, 4) policy logits on (4, 8) that keep their Categorical distribution in a plain "
            "object's attribute (self.action_dist.distribution, as stable-baselines3's policies do) and return "
            "the likeliest action's log-probability: after a forward with autograd on, each backend still "
            "counts a copy of the model",
        ),
        hard_case(
            "calls-sibling-modules",
            CallsSiblingModules,
            randn_inputs((4, 16)),
            {"linear", "reuse", "lora"},
            # base 4 x 16 x 16; lora_A then lora_B on the (16, 16) identity and on x; the column norms
            expected_macs=4 * 16 * 16 + 16 * 16 * 4 + 16 * 4 * 16 + 4 * 16 * 4 + 4 * 4 * 16,
            expected_params=16 * 16 + 16 + 16 * 4 + 4 * 16 + 16,
            description="peft's DoRA on Linear(16, 16), on (4, 16): a leaf module holding the magnitude vector calls "
            "the rank-4 lora_A and lora_B beside it (passed in) on a (16, 16) identity and on x; hook counters "
            "price each of those calls on its own, as they price every hooked module",
        ),
        hard_case(
            "parameter-attributes",
            ParameterAttributes,
            randn_inputs((4, 16)),
            {"linear", "state"},
            expected_macs=4 * 16 * 32 + 4 * 32 * 4,
            expected_params=16 * 32 + 32 + 32 * 4 + 4,
            description="Linear(16, 32), ReLU and muP's readout Linear(32, 4) on (4, 16); the readout divides its "
            "input by the width multiplier it reads from an attribute of its weight (mup.set_base_shapes' "
            "infshape), which torch's Parameter.__deepcopy__ does not copy: a counter given a plain deep copy fails",
        ),
        hard_case(
            "adjoint-solver",
            AdjointSolver,
            randn_inputs((4, 8)),
            {"custom-function", "linear", "matmul"},
            expected_macs=2 * 4 * 8 * 8 + 4 * 8 * 2,  # two steps of (4, 8) @ (8, 8), the head
            expected_params=8 * 8 + 8 * 2 + 2,
            description="two steps of y <- y @ w (w 8 x 8) on (4, 8), solved under no_grad into a solution buffer "
            "inside a custom autograd Function whose backward is the adjoint recurrence (torchdiffeq's "
            "odeint_adjoint), then Linear(8, 2) on the last state; in a training step the buffer, filled in place "
            "through views made under no_grad, becomes the Function's output",
        ),
        hard_case(
            "numpy-hyperparameters",
            NumpyHyperParameters,
            randn_inputs((2, 3, 16, 16)),
            {"conv", "linear"},
            expected_macs=2 * 8 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 4,
            expected_params=8 * 3 * 3 * 3 + 8 + 8 * 4 + 4,
            description="Conv2d(3, 8, 3, stride 2, padding 1) built with numpy integers for its kernel size, stride "
            "and padding (as pytorchvideo builds its convolutions), global average pool, Linear(8, 4), on "
            "(2, 3, 16, 16): counters that patch F.conv2d read them as numpy numbers",
        ),
        hard_case(
            "prints-tensors",
            PrintsTensors,
            randn_inputs((4, 16)),
            {"linear", "matmul", "printing"},
            expected_macs=4 * 16 * 40 + 40 * 4 * 40,  # the Linear, the Gram matrix; printing is not the model's work
            expected_params=16 * 40 + 40,
            description="Linear(16, 40) on (4, 16), its (4, 40) output printed, the (40, 40) Gram matrix of its "
            "columns formatted into a string (summarised: 6 x 6 values shown) and an integer tensor repr'd: torch's "
            "formatter runs with dispatch modes disabled, and torch.profiler prices its torch.isfinite products",
        ),
        hard_case(
            "hook-adapter",
            HookAdapter,
            randn_inputs((4, 16)),
            {"linear", "hooks", "lora"},
            expected_macs=4 * 16 * 16 + 4 * 16 * 2 + 4 * 2 * 16 + 4 * 16 * 3,
            expected_params=16 * 16 + 16 + 16 * 2 + 2 * 16 + 16 * 3 + 3,
            description="Linear(16, 16) on (4, 16) with a rank-2 adapter (16 -> 2 -> 16) added by a forward hook "
            "written as a closure over the model, ReLU, Linear(16, 3) whose pre-hook layer-normalises its input: a "
            "copy of the model must run its own adapter, not the model's",
        ),
        hard_case(
            "momentum-encoder",
            MomentumEncoder,
            _two_views,
            {"linear", "einsum", "state"},
            # both encoders, the positive logits (4 x 16) and the negative ones against 32 queued keys
            expected_macs=2 * (4 * 8 * 32 + 4 * 32 * 16) + 4 * 16 + 4 * 16 * 32,
            expected_params=2 * (8 * 32 + 32 + 32 * 16 + 16),
            description="MoCo on two (4, 8) views: a query encoder, a key encoder updated by momentum through "
            "param.data = ... in every forward (its weights get new storages), and a queue of keys written in "
            "place: a count must give the model its own weights and queue back, and a JIT trace reads the key "
            "encoder's weights as the graph inputs they were (the momentum work feeds nothing it keeps)",
        ),
        hard_case(
            "first-call-init",
            FirstCallInit,
            randn_inputs((16, 8)),
            {"linear", "state"},
            expected_macs=16 * 8 * 8,  # the Linear; the initialisation is statistics and elementwise work
            expected_params=2 * 8 + 8 * 8 + 8,
            description="Glow's ActNorm with a plain Python flag, initialised from the first batch's statistics "
            "in its first forward, then Linear(8, 8), on (16, 8); the forward also counts its calls: every count "
            "is of a first call, and the model is given back as it was (flag, counter and values)",
        ),
        hard_case(
            "csr-adjacency",
            CsrGraphPropagation,
            _ring_graph_csr,
            {"graph", "sparse", "linear", "matmul"},
            # x W 12 x 16 x 8; adj @ adj one multiply-add per stored (i, k) and stored (k, j): 12 rows x 3 x 3;
            # adj @ (x W) 36 stored x 8; the square (5 stored per row, 60) @ that 60 x 8
            expected_macs=12 * 16 * 8 + 12 * 3 * 3 + 36 * 8 + 60 * 8,
            expected_params=16 * 8,
            description="PyG's sparse CSR path on the 12-node ring graph of gcn-sparse-adjacency (36 stored "
            "elements, CSR): Linear(16, 8), the adjacency squared (a product of two CSR tensors, as GraphUNet "
            "pools on it) and both multiplied into the projected features; the reference prices a product of "
            "two sparse tensors by the pairs of stored elements that meet, torch.profiler records a CSR product "
            "three times (aten::mm, its aten::addmm and that one again inside itself)",
        ),
        hard_case(
            "uncopyable-attributes",
            HoldsUncopyables,
            randn_inputs((2, 8)),
            {"linear", "state"},
            expected_macs=2 * 8 * 8,
            expected_params=8 * 8 + 8,
            description="Linear(8, 8) behind a threading.Lock its forward takes, scaled by a constant read from "
            "a Python module object the layer holds: neither can be deep-copied, so a copy for a counter "
            "shares them (every copying counter failed in flopaudit's copy)",
        ),
        hard_case(
            "identity-checked-weights",
            _identity_checked_mlp,
            randn_inputs((3, 8)),
            {"linear", "subclass"},
            expected_macs=3 * 8 * 16 + 3 * 16 * 4,
            expected_params=16 + 4,  # the weights are buffers
            description="two F.linear layers whose weights' class runs its own kernel (a scale, then "
            "torch.matmul) only when func is torch.nn.functional.linear, as optimum-quanto's quantized "
            "weights do, and defers otherwise: counters that wrap F.linear (and the recording made for them) "
            "see the deferred path, the others the weight's own kernel",
        ),
        hard_case(
            "repacks-weight-on-first-call",
            _repacking_block,
            randn_inputs((4, 16)),
            {"linear", "state"},
            expected_macs=4 * 16 * 8,
            expected_params=8 * 16,
            description="a layer repacking its (8, 16) weight to (16, 8) on its first call, then ReLU; with a flag in a "
            "state object the parameter holds, as bitsandbytes' Linear4bit does on the CPU in eval mode: a "
            "count gives the weight its data and the state its flag back (given back the data alone, the next "
            "call read the old layout as packed)",
        ),
        hard_case(
            "forward-called-directly",
            CallsForwardDirectly,
            randn_inputs((2, 3, 8, 8)),
            {"conv", "linear", "structure"},
            expected_macs=2 * 8 * 8 * 8 * 3 * 3 * 3 + 2 * 8 * 16 + 2 * 16 * 4,
            expected_params=8 * 27 + 8 + 8 * 16 + 16 + 16 * 4 + 4,
            description="Conv2d(3, 8, 3) and Linear(8, 16) run as conv.forward(x) and fc1.forward(x), which no "
            "module hook sees (the work is the root's, as functional calls are), then Linear(16, 4) called "
            "as usual: hook counters count the last layer only",
        ),
        hard_case(
            "copy-dropped-cache",
            CopyDroppedCache,
            randn_inputs((4, 8)),
            {"linear", "matmul", "state"},
            expected_macs=4 * 8 * 8 + 4 * 8 * 8,  # the Linear and the product with the kept Gram matrix
            expected_params=8 * 8 + 8,
            description="Linear(8, 8) on (4, 8) times the (8, 8) Gram matrix of a (16, 8) basis that the model "
            "keeps in an object whose __deepcopy__ gives None (gpytorch's prediction strategy) and makes again "
            "(8 x 16 x 8 MACs) when it is missing: every backend counts the model as it runs, not a first call",
        ),
        hard_case(
            "process-memoised-table",
            MemoisedSineTable,
            randn_inputs((1, 16, 8)),
            {"linear", "matmul", "state"},
            expected_macs=16 * 8 * 8 + 16 * 8,  # the Linear, and the table's (16, 1) x (1, 8) product
            expected_params=8 * 8 + 8,
            description="Linear(8, 8) on (1, 16, 8) tokens plus a sine position table that a static method "
            "memoised for the process (functools.lru_cache(maxsize=1), as transformers' MaskFormer and DETR "
            "build theirs) makes from a (16, 1) x (1, 8) product: every count builds it, as a fresh process's "
            "first forward does, whatever counted before it in the process",
        ),
        hard_case(
            "dropout-train",
            _linear_dropout,
            randn_inputs((4, 16)),
            {"linear", "train-mode"},
            expected_macs=4 * 16 * 16,
            expected_params=LINEAR,
            description="Linear(16, 16) then Dropout(0.5) on (4, 16), in train mode: the dropout runs (a mask and "
            "a multiply per element, extra FLOPs), and a JIT trace holds it as one aten::dropout node",
            train=True,
        ),
        hard_case(
            "timm-style-layers",
            TimmStyleLayers,
            randn_inputs((2, 3, 8, 8)),
            {"conv", "timm-layer"},
            # conv 2 x 8 x 6 x 6 x (3 x 3 x 3) + head 2 x 16 x 10
            expected_macs=2 * 8 * 6 * 6 * 27 + 2 * 16 * 10,
            expected_params=8 * 3 * 3 * 3 + 16 * 10 + 10,
            description="a Conv2d subclass standardising its weight (timm's StdConv2d), LeakyReLU(inplace=True), "
            "a global mean and Tensor.repeat(1, 2) into Linear(16, 10), on (2, 3, 8, 8): isinstance-matching "
            "counters (torchstat) price the subclass as a convolution, torchprofile has no handler for the "
            "in-place leaky_relu_, and torch.profiler prices an aten::add inside aten::repeat",
        ),
        hard_case(
            "batched-nms-head",
            BatchedNmsHead,
            randn_inputs((10, 8)),
            {"detection", "linear", "trace-branch"},
            # box, score and label heads on 10 rows: 10 x 8 x (4 + 1 + 3); NMS and the scaling are elementwise
            expected_macs=10 * 8 * (4 + 1 + 3),
            expected_params=8 * 4 + 4 + 8 * 1 + 1 + 8 * 3 + 3,
            description="three Linear heads on (10, 8) give boxes, scores and labels; torchvision.ops.batched_nms "
            "keeps some boxes, which are scaled by their scores: for 40 coordinates on the CPU batched_nms "
            "offsets each class with one multiply per box, which a JIT trace holds inside one opaque "
            "TorchScript call (torch.jit._script_if_tracing)",
        ),
        hard_case(
            "box-regression-targets",
            BoxRegressionLoss,
            _proposals_and_matches,
            {"detection", "linear", "trace-branch"},
            # the head: 12 proposals x 8 -> 4; the box encoding and the loss are elementwise
            expected_macs=12 * 8 * 4,
            expected_params=8 * 4 + 4,
            description="a detector's box-regression loss on 12 proposals: Linear(8, 4) predicts box deltas, "
            "torchvision's BoxCoder.encode_single makes the targets from the matched boxes (as Faster R-CNN does "
            "in training), smooth L1 between them; a JIT trace runs encode_boxes as one TorchScript call "
            "(torch.jit._script_if_tracing)",
        ),
        hard_case(
            "keypoint-heatmap-targets",
            KeypointHeatmapLoss,
            _proposals_and_keypoints,
            {"detection", "conv", "trace-branch"},
            # the head: 6 proposals x 8 x 8 positions x 8 -> 3 channels; the targets and the loss are elementwise
            expected_macs=6 * 64 * 8 * 3,
            expected_params=8 * 3 + 3,
            description="Keypoint R-CNN's keypoint loss on 6 proposals: Conv2d(8, 3, 1) predicts 8x8 heatmaps, "
            "torchvision's keypointrcnn_loss turns the ground-truth keypoints into heatmap cells (heatmap_size / "
            "box width, the size read from the logits) and takes the cross entropy; a JIT trace holds that size "
            "as a tensor, so its division is one aten::div where an eager pass multiplies the reciprocal",
        ),
        hard_case(
            "size-keyed-grid-cache",
            GridDecodeHead,
            randn_inputs((1, 8, 8, 8)),
            {"conv", "detection", "trace-branch"},
            # the 1x1 convolution: 8 x 8 cells x 8 -> 2 channels; the scaling, the grid and the sum are elementwise
            expected_macs=8 * 8 * 8 * 2,
            expected_params=8 * 2 + 2,
            description="a detection head on (1, 8, 8, 8): a 1x1 Conv2d(8, 2) predicts cell offsets, scaled by "
            "the stride and added to a grid of cell positions that the model made at build time and keeps in a "
            "dict keyed on the feature size (YOLO's Detect.grid, RT-DETR's cached position tables); an eager "
            "pass finds the grid there, a JIT trace, whose sizes are tensors, makes it again",
        ),
        hard_case(
            "jagged-token-mlp",
            _jagged_token_mlp,
            _jagged_tokens,
            {"linear", "jagged"},
            # 10 real tokens x (16 x 32 + 32 x 4); no padding
            expected_macs=(3 + 5 + 2) * (16 * 32 + 32 * 4),
            expected_params=2 * 16 + 16 * 32 + 32 + 32 * 4 + 4,
            description="a token MLP (LayerNorm(16), Linear(16, 32), GELU, Linear(32, 4)) on a jagged nested "
            "tensor of 3, 5 and 2 tokens (torch.nested with layout=torch.jagged, a batch of variable-length "
            "sequences without padding): its ragged size is a symbolic int, which counters reading sizes as "
            "ints and JIT traces refuse",
        ),
        hard_case(
            "scalar-tensor-scale",
            ScalarTensorScale,
            randn_inputs((4, 16)),
            {"linear", "scalar-tensor"},
            expected_macs=4 * 16 * 16,
            expected_params=LINEAR,
            description="Linear(16, 16) on (4, 16), divided by sqrt(torch.tensor(16.) * 3) as DeBERTa-v2 scales "
            "its attention scores: a product of 0-dim tensors, which a dispatcher sees and a JIT trace records "
            "as a 0-dim aten::mul node, like Python arithmetic on sizes",
        ),
        hard_case(
            "tensor-sized-padded-conv",
            TensorSizedPaddedConv,
            randn_inputs((2, 2, 33)),
            {"conv", "scalar-tensor"},
            # padded to 5 + 33 + 1 = 39 samples, ceil((39 - 7) / 2) + 1 = 17 outputs: 2 x 4 x 17 x 2 x 7
            expected_macs=2 * 4 * 17 * 2 * 7,
            expected_params=4 * 2 * 7 + 4,
            description="EnCodec's padded Conv1d (also Mimi's and DAC's) on (2, 2, 33): Conv1d(2, 4, 7, "
            "stride=2) whose stride, kernel size and padding are 0-d tensor buffers, the extra padding computed "
            "from them with tensor arithmetic, then a causal reflect pad; torchinfo iterates a kernel_size "
            "attribute as a sequence",
        ),
        hard_case(
            "module-copied-in-forward",
            CopiesInForward,
            randn_inputs((2, 32)),
            {"linear", "copy"},
            # fc and its copy 2 x 2 x 32 x 16, block's copy 2 x 16 x 16, head 2 x 16 x 8
            expected_macs=2 * (2 * 32 * 16) + 2 * 16 * 16 + 2 * 16 * 8,
            expected_params=32 * 16 + 16 + 16 * 16 + 16 + 16 * 8 + 8,
            description="copy.deepcopy of its own modules inside the forward, each copy run (a Linear twin, "
            "a Sequential block), as the torch.func ensembling recipe copies a member: a copy carries the "
            "counters' hooks; thop, ptflops, calflops and DeepSpeed keep its count on the copy, outside the "
            "model, torchinfo and torchsummary give it rows of its own",
        ),
        hard_case(
            "timm-attention-block",
            _timm_attention,
            randn_inputs((2, 10, 32)),
            {"attention", "timm-layer"},
            # qkv 2 x 10 x 32 x 96 + scores and weighted sum 2 x (2 x 4 x 10 x 10 x 8) + proj 2 x 10 x 32 x 32
            expected_macs=2 * 10 * 32 * 96 + 2 * (2 * 4 * 10 * 10 * 8) + 2 * 10 * 32 * 32,
            expected_params=32 * 96 + 96 + 32 * 32 + 32,
            description="timm.layers.Attention(32, num_heads=4, qkv_bias=True) on (2, 10, 32), the ViT family's "
            "block: ptflops has its own hook for it that counts only the attention products",
            requires=("timm",),
        ),
    ]
    out.append(hard_case(
        "deform-conv",
        ModulatedDeformable,
        randn_inputs((2, 4, 8, 8)),
        {"conv", "deformable"},
        # offsets 2 x 18 x 8 x 8 x 4 x 3 x 3, mask 2 x 9 x 64 x 36, the deformable conv 2 x 8 x 64 x 36
        expected_macs=2 * 18 * 64 * 36 + 2 * 9 * 64 * 36 + 2 * 8 * 64 * 36,
        expected_params=(18 * 36 + 18) + (9 * 36 + 9) + (8 * 36 + 8),
        description="a modulated deformable convolution (DCNv2) on (2, 4, 8, 8): Conv2d(4, 18, 3) offsets, "
        "Conv2d(4, 9, 3) and a sigmoid for the mask, torchvision.ops.DeformConv2d(4, 8, 3) sampling there "
        "(one torchvision::deform_conv2d operator)",
    ))
    out.append(hard_case(
        "knn-point-grouping",
        KnnGrouping,
        randn_inputs((2, 32, 3)),
        {"point-cloud", "functional", "conv"},
        # cdist through the product 2 x 32 x 32 x (3 + 2); edge conv 2 x 16 x 32 x 4 x 6
        expected_macs=2 * 32 * 32 * (3 + 2) + 2 * 16 * 32 * 4 * 6,
        expected_params=16 * 6 + 16,
        description="k-nearest-neighbour grouping as PointNet++ and DGCNN do on (2, 32, 3) points: "
        "torch.cdist (past 25 points ATen runs it as one aten::_euclidean_dist, a product with the squared "
        "norms), topk(4), gather of the neighbours, a 1x1 Conv2d(6, 16) over the edge features and a max",
    ))
    out.append(hard_case(
        "spatial-transformer",
        SpatialTransformer,
        randn_inputs((2, 3, 16, 16)),
        {"conv", "functional", "interpolation"},
        # loc conv 2 x 8 x 14 x 14 x 27, loc linear 2 x 8 x 6, the grid 2 x 16 x 16 positions x 3 x 2,
        # the conv on the resampled input 2 x 4 x 14 x 14 x 27 (grid_sample's interpolation: extra FLOPs)
        expected_macs=2 * 8 * 196 * 27 + 2 * 8 * 6 + 2 * 256 * 3 * 2 + 2 * 4 * 196 * 27,
        expected_params=(8 * 27 + 8) + (8 * 6 + 6) + (4 * 27 + 4),
        description="a spatial transformer network on (2, 3, 16, 16): a localisation net (Conv2d(3, 8, 3), "
        "global pool, Linear(8, 6)) predicts an affine theta per image; F.affine_grid (one "
        "aten::affine_grid_generator, a batched product of the base coordinates) and F.grid_sample resample "
        "the input for a Conv2d(3, 4, 3)",
    ))
    out.append(hard_case(
        "gcn-sparse-adjacency",
        SparseGCN,
        _ring_graph,
        {"graph", "sparse", "functional", "linear"},
        # projections 12 x 16 x 16 and 12 x 16 x 4; each spmm one multiply-add per stored element (36) and column
        expected_macs=12 * 16 * 16 + 36 * 16 + 12 * 16 * 4 + 36 * 4,
        expected_params=16 * 16 + 16 * 4,
        description="Kipf and Welling's GCN on a 12-node ring graph (36 stored elements in a sparse COO "
        "adjacency): Linear(16, 16), torch.spmm with the adjacency, ReLU, Linear(16, 4), torch.spmm, "
        "log-softmax; the reference prices each sparse product by its stored elements, counters that read "
        "shapes only as if the adjacency were dense (12 x 12)",
    ))
    out.append(hard_case(
        "roi-align-head",
        _roi_box_head,
        _two_boxes,
        {"conv", "detection", "pooling"},
        # p2 8 x 32 x 32 x 27, p3 8 x 16 x 16 x 72, the head 2 boxes x 392 x 16 (RoIAlign's bilinear
        # samples: extra FLOPs, 2 x 8 x 49 bins x (4 samples x 8 + 1))
        expected_macs=8 * 1024 * 27 + 8 * 256 * 72 + 2 * 392 * 16,
        expected_params=(8 * 27 + 8) + (8 * 72 + 8) + (392 * 16 + 16),
        description="a two-stage detector's box head on a 32x32 image with two boxes: Conv2d(3, 8, 3) and "
        "Conv2d(8, 8, 3, stride 2) as two feature levels, torchvision's MultiScaleRoIAlign (7x7, sampling "
        "ratio 2; the small box pooled from p2, the large from p3: one torchvision::roi_align each) and "
        "Linear(392, 16)",
    ))
    out.append(hard_case(
        "kv-cache-decode",
        CachedDecodeStep,
        _token_and_cache,
        {"attention", "inputs", "linear"},
        # q, k, v, o 4 x 16 x 16; scores 32 x 16 and their weighted sum 32 x 16, over the 31 cached tokens and this one
        expected_macs=4 * 16 * 16 + 2 * 32 * 16,
        expected_params=4 * 16 * 16,
        description="one decode step of single-head attention on a new token (1, 1, 16) and a key/value cache "
        "of 31 tokens that the step appends to (torch.cat into the cache object it is given, as transformers' "
        "DynamicCache is): every count must start from the cache as given, 31 tokens, not from what an "
        "earlier count left in it",
    ))
    out.append(hard_case(
        "static-quantized-residual",
        _static_quantized,
        randn_inputs((2, 3, 16, 16)),
        {"conv", "quantized"},
        # conv1 2 x 8 x 256 x 27, conv2 2 x 8 x 256 x 72, skip 2 x 8 x 256 x 3, fc 2 x 8 x 4: the float twin's
        expected_macs=2 * 8 * 256 * (27 + 72 + 3) + 2 * 8 * 4,
        expected_params=0,  # int8 weights packed: no nn.Parameter left
        description="a residual conv block after torch.ao eager-mode static quantization (fused Conv2d+BN+ReLU "
        "and Conv2d+BN, a 1x1 skip Conv2d, FloatFunctional add_relu, global pool, Linear) on (2, 3, 16, 16): "
        "quantize_per_tensor, quantized::conv2d_relu/conv2d, quantized::add_relu, quantized::linear, "
        "dequantize, whose weights are packed objects, not parameters",
    ))
    out.append(hard_case(
        "sparse-delta-weight",
        SparseDeltaLinear,
        randn_inputs((2, 12, 32)),
        {"linear", "functional", "sparse"},
        expected_macs=2 * 24 * 32 * 32,  # two F.linear over 24 rows; the sparse adds are elementwise
        expected_params=32 * 32 + 64,
        description="a Linear-like layer on (2, 12, 32) updated as peft's ShiRA adapter updates it: a (32, 32) "
        "weight plus a sparse COO delta of 64 values, added in place to a copy (weight += delta) and out of "
        "place (weight + delta), each used by F.linear",
    ))
    if hasattr(torch, "_grouped_mm"):  # torch 2.8 and later
        out.append(hard_case(
            "moe-grouped-experts",
            GroupedExperts,
            randn_inputs((2, 4, 16)),
            {"moe", "linear", "functional"},
            # router 8 tokens x 16 x 4; each token's 2 rows through up 16 x 32 and down 32 x 16
            expected_macs=8 * 16 * 4 + 16 * 16 * 32 + 16 * 32 * 16,
            expected_params=16 * 4 + 4 * 16 * 32 + 4 * 32 * 16,
            description="a mixture-of-experts MLP on (2, 4, 16) as transformers runs Mixtral's and Qwen-MoE's "
            "experts: a router Linear(16, 4) picks 2 of 4 experts per token, torch.histc counts the rows per "
            "expert, two torch._grouped_mm products (16 -> 32, ReLU, 32 -> 16) run every expert on its rows",
        ))
    return out
