"""Dense linear algebra by direct methods: the LAPACK routines ATen runs for each
``torch.linalg`` operator, priced with LAPACK's own operation counts.

The counts are those of LAPACK Working Note 41 (Blackford and Dongarra, "Installation
Guide for LAPACK", appendix "Operation Counts for the LAPACK Routines"), as LAPACK's
timing suite computes them (``DOPLA``): multiplications (divisions included) and
additions per routine, from the matrix sizes. Per matrix of a batch:

* ``linalg_cholesky_ex``: POTRF; ``cholesky_solve``: POTRS; ``cholesky_inverse``: POTRI;
* ``linalg_solve_triangular``, ``triangular_solve``: TRTRS (one triangular solve per
  right-hand side);
* ``linalg_lu_factor_ex``, ``linalg_lu``: GETRF; ``linalg_lu_solve``: GETRS;
  ``_linalg_solve_ex`` (``linalg.solve``): GETRF + GETRS; ``linalg_inv_ex``: GETRF + GETRS
  with the identity's ``n`` right-hand sides (what ATen runs); ``_linalg_det`` and
  ``_linalg_slogdet``: GETRF, and ``n`` FLOPs for the diagonal's product (or logs and sum);
* ``geqrf``: GEQRF; ``linalg_householder_product``: ORGQR; ``ormqr``: ORMQR;
  ``linalg_qr``: GEQRF, and ORGQR for ``Q`` in the ``reduced`` and ``complete`` modes.

MACs are the additions (each paired with a multiplication), extra FLOPs the
multiplications left over (divisions by pivots, scalings), so that canonical FLOPs
(``2 x MACs + extra``) are LAPACK's total, multiplications plus additions.
``lu_unpack`` is data movement. Eigenvalue problems and the SVD (``_linalg_eigh``,
``linalg_eig``, ``_linalg_svd``) and least squares (``linalg_lstsq``) are not priced:
their work depends on the values (iterations to converge) or on the driver chosen, and
LAPACK gives no formula for them.
# NB: blocked and recursive LAPACK variants do the same arithmetic in another order; square
# roots (POTRF) and the pivot search are not counted; a unit-triangular solve is counted as
# a general one.
"""

from __future__ import annotations

from fractions import Fraction as F
from math import prod

from flopaudit.reference.formulas._factories import on
from flopaudit.reference.registry import Category, Cost, OpCall, Shape

Counts = tuple[F, F]
"""(multiplications, additions) of one LAPACK call."""


def getrf(m: int, n: int) -> Counts:
    """LU factorisation of an ``m x n`` matrix with partial pivoting."""
    k = min(m, n)
    adds = k * (m * n - F(m + n) * (k + 1) / 2 + F(k + 1) * (2 * k + 1) / 6)
    return adds + k * (m - F(k + 1) / 2), adds


def getrs(n: int, rhs: int) -> Counts:
    """Solve with an LU factorisation of an ``n x n`` matrix, ``rhs`` right-hand sides."""
    return F(rhs * n * n), F(rhs * n * (n - 1))


def potrf(n: int) -> Counts:
    """Cholesky factorisation of an ``n x n`` matrix."""
    return n * (F(1, 3) + n * (F(1, 2) + n * F(1, 6))), F(n * (n * n - 1), 6)


def potrs(n: int, rhs: int) -> Counts:
    """Solve with a Cholesky factor of an ``n x n`` matrix, ``rhs`` right-hand sides."""
    return F(rhs * n * (n + 1)), F(rhs * n * (n - 1))


def potri(n: int) -> Counts:
    """Inverse from a Cholesky factor."""
    return n * (F(2, 3) + n * (1 + n * F(1, 3))), n * (F(1, 6) + n * (F(-1, 2) + n * F(1, 3)))


def trtrs(n: int, rhs: int) -> Counts:
    """Triangular solve with an ``n x n`` triangle, ``rhs`` right-hand sides."""
    return F(rhs * n * (n + 1), 2), F(rhs * n * (n - 1), 2)


def geqrf(m: int, n: int) -> Counts:
    """Householder QR factorisation of an ``m x n`` matrix."""
    if m >= n:
        return (n * ((F(23, 6) + m + F(n, 2)) + n * (m - F(n, 3))),
                n * (F(5, 6) + n * (F(1, 2) + (m - F(n, 3)))))
    return (m * ((F(23, 6) + 2 * n - F(m, 2)) + m * (n - F(m, 3))),
            m * (F(5, 6) + n - F(m, 2) + m * (n - F(m, 3))))


def orgqr(m: int, n: int, k: int) -> Counts:
    """Forming the ``m x n`` matrix ``Q`` from ``k`` Householder reflectors."""
    common = 2 * m * n + k * (F(2, 3) * k - m - n)
    return k * (F(-5, 3) + (2 * n - k) + common), k * (F(1, 3) + (n - m) + common)


def ormqr(m: int, n: int, k: int, left: bool) -> Counts:
    """Applying ``k`` Householder reflectors to an ``m x n`` matrix, from the left or the right."""
    if left:
        return F(k * n * (2 * m + 2 - k)), F(k * n * (2 * m + 1 - k))
    return k * (m * (2 * n - k) + (m + n + F(1 - k, 2))), F(k * m * (2 * n + 1 - k))


def _cost(batch: int, *counts: Counts, extra: int = 0) -> Cost:
    """MACs = additions, extra FLOPs = the multiplications beyond them, for ``batch`` matrices."""
    mults = sum(c[0] for c in counts)
    adds = sum(c[1] for c in counts)
    macs, rest = min(mults, adds), abs(mults - adds)
    return Cost(int(batch * macs), int(batch * rest) + batch * extra, Category.MATMUL)


def _batch(shape: Shape) -> int:
    return prod(shape[:-2])


@on("linalg_cholesky_ex")
def cholesky(call: OpCall) -> Cost:
    """Cholesky factorisation: POTRF per matrix."""
    a = call.shape("self")
    return _cost(_batch(a), potrf(a[-1]))


@on("cholesky_solve", "_cholesky_solve_helper")
def cholesky_solve(call: OpCall) -> Cost:
    """Solve with a Cholesky factor (``input2``/``A``): POTRS per matrix, one solve per column of ``self``."""
    b = call.shape("self")
    return _cost(_batch(call.out), potrs(b[-2], b[-1]))


@on("cholesky_inverse")
def cholesky_inverse(call: OpCall) -> Cost:
    """Inverse from a Cholesky factor: POTRI per matrix."""
    a = call.shape("self")
    return _cost(_batch(a), potri(a[-1]))


def _matrix_right_hand_sides(b: Shape, left: bool) -> int:
    """Right-hand sides in a matrix ``B``: its columns (``A X = B``), or its rows with ``left=False`` (``X A = B``)."""
    return b[-1] if left else b[-2]


@on("linalg_solve_triangular", "triangular_solve")
def solve_triangular(call: OpCall) -> Cost:
    """Triangular solve: TRTRS per matrix, one solve per right-hand side (the columns of ``B``,
    or its rows with ``left=False``)."""
    triangle, b = call.shape("A", "self"), call.shape("B", "self")  # triangular_solve(B, A), linalg's (A, B)
    return _cost(_batch(call.out), trtrs(triangle[-1], _matrix_right_hand_sides(b, bool(call.get("left", True)))))


@on("linalg_lu_factor_ex", "linalg_lu")
def lu_factor(call: OpCall) -> Cost:
    """LU factorisation: GETRF per matrix (``linalg_lu`` unpacks P, L and U after it: data movement)."""
    a = call.shape("A")
    return _cost(_batch(a), getrf(a[-2], a[-1]))


@on("linalg_lu_solve")
def lu_solve(call: OpCall) -> Cost:
    """Solve with an LU factorisation: GETRS per matrix."""
    lu, b = call.shape("LU"), call.shape("B")
    return _cost(_batch(call.out), getrs(lu[-1], _matrix_right_hand_sides(b, bool(call.get("left", True)))))


def _right_hand_sides(a: Shape, b: Shape, left: bool) -> int:
    """Right-hand sides of ``linalg.solve(A, B)``: ``B`` is a batch of vectors where it has one
    dimension less than ``A`` and matches its leading dimensions (torch's rule), else of matrices."""
    if len(b) == 1 or (len(b) == len(a) - 1 and tuple(b) == tuple(a[:-1])):
        return 1
    return _matrix_right_hand_sides(b, left)


@on("_linalg_solve_ex")
def solve(call: OpCall) -> Cost:
    """``linalg.solve``: GETRF and GETRS per matrix."""
    a, b = call.shape("A"), call.shape("B")
    n = a[-1]
    return _cost(_batch(a), getrf(n, n), getrs(n, _right_hand_sides(a, b, bool(call.get("left", True)))))


@on("linalg_inv_ex")
def inverse(call: OpCall) -> Cost:
    """Inverse: ATen solves ``A X = I``: GETRF and GETRS with ``n`` right-hand sides per matrix."""
    a = call.shape("A")
    n = a[-1]
    return _cost(_batch(a), getrf(n, n), getrs(n, n))


@on("_linalg_det", "_linalg_slogdet")
def determinant(call: OpCall) -> Cost:
    """Determinant (or its sign and log): GETRF per matrix and ``n`` FLOPs over the diagonal."""
    a = call.shape("A")
    n = a[-1]
    return _cost(_batch(a), getrf(n, n), extra=n)


@on("geqrf")
def qr_factor(call: OpCall) -> Cost:
    """Householder QR factorisation: GEQRF per matrix."""
    a = call.shape("self")
    return _cost(_batch(a), geqrf(a[-2], a[-1]))


@on("linalg_householder_product")
def householder_product(call: OpCall) -> Cost:
    """``Q`` from Householder reflectors: ORGQR per matrix."""
    a, tau = call.shape("input"), call.shape("tau")
    return _cost(_batch(a), orgqr(a[-2], a[-1], tau[-1]))


@on("ormqr")
def apply_householder(call: OpCall) -> Cost:
    """Reflectors applied to a matrix (``input3``): ORMQR per matrix."""
    c, tau = call.shape("input3"), call.shape("input2")
    return _cost(_batch(c), ormqr(c[-2], c[-1], tau[-1], bool(call.get("left", True))))


@on("linalg_qr")
def qr(call: OpCall) -> Cost:
    """``linalg.qr``: GEQRF per matrix, and ORGQR forming ``Q`` (``m x k`` reduced, ``m x m``
    complete; none in mode ``r``)."""
    a = call.shape("A")
    m, n = a[-2], a[-1]
    k = min(m, n)
    mode = call.get("mode", "reduced")
    forming = () if mode == "r" else (orgqr(m, m if mode == "complete" else k, k),)
    return _cost(_batch(a), geqrf(m, n), *forming)
