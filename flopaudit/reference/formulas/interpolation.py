"""Resampling: ``F.interpolate``/``nn.Upsample`` kernels and grid sampling.

Per output element, an n-linear interpolation reads ``2**d`` taps: ``2**d``
multiplies and ``2**d - 1`` adds. So: nearest 0, linear 3, bilinear 7,
trilinear 15, bicubic (16 taps) 31.

# NB: computing source coordinates and interpolation weights (shared
# along rows/columns) is not counted; antialiased resizing is charged as its
# non-antialiased kernel although its support grows when downsampling.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import on, per_output_element
from flopaudit.reference.registry import Category, Cost, OpCall, numel


def taps_flops(taps: int) -> int:
    """FLOPs of a weighted sum of ``taps`` values."""
    return 2 * taps - 1 if taps > 1 else 0


nearest = per_output_element(
    Category.INTERPOLATION, 0,
    "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
    "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
    name="upsample_nearest",
    doc="Nearest-neighbour resampling: a gather, 0 FLOPs (category interpolation).",
)
linear = per_output_element(
    Category.INTERPOLATION, taps_flops(2), "upsample_linear1d",
    name="upsample_linear", doc="Linear resampling: 3 FLOPs per output element.",
)
bilinear = per_output_element(
    Category.INTERPOLATION, taps_flops(4), "upsample_bilinear2d", "_upsample_bilinear2d_aa",
    name="upsample_bilinear", doc="Bilinear resampling: 7 FLOPs per output element.",
)
trilinear = per_output_element(
    Category.INTERPOLATION, taps_flops(8), "upsample_trilinear3d",
    name="upsample_trilinear", doc="Trilinear resampling: 15 FLOPs per output element.",
)
bicubic = per_output_element(
    Category.INTERPOLATION, taps_flops(16), "upsample_bicubic2d", "_upsample_bicubic2d_aa",
    name="upsample_bicubic", doc="Bicubic resampling (4x4 taps): 31 FLOPs per output element.",
)

#: grid_sampler ``interpolation_mode``: 0 bilinear, 1 nearest, 2 bicubic.
_GRID_TAPS_2D = {0: 4, 1: 1, 2: 16}
_GRID_TAPS_3D = {0: 8, 1: 1}


@on("grid_sampler_2d", "grid_sampler_3d", "cudnn_grid_sampler", "_grid_sampler_2d_cpu_fallback")
def grid_sample(call: OpCall) -> Cost:
    """``F.grid_sample``: per output element, the taps of its interpolation mode.

    Bilinear 7, nearest 0, bicubic 31 (2-d); trilinear 15 (3-d). cudnn's
    sampler is bilinear.
    # NB: unnormalising the grid coordinates is not counted.
    """
    mode = int(call.get("interpolation_mode", 0) or 0)
    taps = (_GRID_TAPS_3D if "3d" in call.op else _GRID_TAPS_2D).get(mode, 4)
    return Cost(0, taps_flops(taps) * numel(call.out), Category.INTERPOLATION)


@on("affine_grid_generator")
def affine_grid(call: OpCall) -> Cost:
    """``F.affine_grid(theta (N, k, k + 1), size)``: each of the ``N x prod(spatial)`` sampling
    positions is its homogeneous base coordinates (``k`` of them and a 1) times ``theta``
    transposed, one batched product: ``N * prod(spatial) * (k + 1) * k`` MACs (k = 2: images,
    3: volumes). Without ``align_corners`` each axis's ``linspace(-1, 1)`` is also scaled by
    ``(n - 1) / n``: a multiply and a divide per step.
    """
    theta = call.shape("theta")
    spatial = [int(s) for s in call["size"][2:]]
    k = int(theta[-2])
    positions = int(theta[0]) * numel(spatial)
    extra = 0 if call.get("align_corners") else 2 * sum(spatial)
    return Cost(positions * (k + 1) * k, extra, Category.MATMUL)
