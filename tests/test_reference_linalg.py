"""Reference counter: dense linear algebra priced with LAPACK's operation counts (LAWN 41).

Each expectation is LAWN 41's multiplications and additions for the routine ATen runs,
worked out by hand for the sizes used: MACs = additions, extra FLOPs = multiplications -
additions (so 2 x MACs + extra = LAPACK's total).
"""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from flopaudit.reference import Category, count
from tests.user_models import Fn


def spd(*batch: int, n: int = 4) -> torch.Tensor:
    """Symmetric positive definite matrices."""
    a = torch.randn(*batch, n, n)
    return a @ a.transpose(-1, -2) + n * torch.eye(n)


# LAWN 41 by hand, n = 4:
#   POTRF  mults n/3 + n^2/2 + n^3/6 = 20, adds (n^3 - n)/6 = 10
#   GETRF  (m = n = k = 4) adds k(mn - (m+n)(k+1)/2 + (k+1)(2k+1)/6) = 4(16 - 20 + 7.5) = 14,
#          mults adds + k(m - (k+1)/2) = 14 + 6 = 20
#   GETRS  (n = 4, r rhs) mults 16r, adds 12r
#   TRTRS  (n = 4, r rhs) mults 10r, adds 6r
#   POTRS  (n = 4, r rhs) mults 20r, adds 12r
#   GEQRF  (m = 6, n = 4) mults n(23/6 + m + n/2 + n(m - n/3)) = 4(23/6 + 8 + 56/3) = 122,
#          adds n(5/6 + n(1/2 + m - n/3)) = 4(5/6 + 62/3) = 86
#   ORGQR  (m = 6, n = k = 4) common 2mn + k(2k/3 - m - n) = 48 + 4(8/3 - 10) = 56/3,
#          mults k(-5/3 + 2n - k + common) = 4(-5/3 + 4 + 56/3) = 84, adds k(1/3 + n - m + common) = 4(1/3 - 2 + 56/3) = 68
CASES = [
    # (operation, inputs, MACs, extra FLOPs)
    ("cholesky", lambda a: torch.linalg.cholesky(a), lambda: [spd(n=4)], 10, 10),
    ("cholesky_batched", lambda a: torch.linalg.cholesky(a), lambda: [spd(3, n=4)], 3 * 10, 3 * 10),
    ("lu_factor", lambda a: torch.linalg.lu_factor(a), lambda: [torch.randn(4, 4)], 14, 6),
    ("solve_matrix_rhs", lambda a, b: torch.linalg.solve(a, b), lambda: [torch.randn(4, 4), torch.randn(4, 3)],
     14 + 36, 6 + 12),
    ("solve_vector_rhs", lambda a, b: torch.linalg.solve(a, b), lambda: [torch.randn(2, 4, 4), torch.randn(2, 4)],
     2 * (14 + 12), 2 * (6 + 4)),
    ("inv", lambda a: torch.linalg.inv(a), lambda: [torch.randn(4, 4)], 14 + 48, 6 + 16),  # GETRF + GETRS(4 rhs)
    ("det", lambda a: torch.linalg.det(a), lambda: [torch.randn(4, 4)], 14, 6 + 4),  # GETRF + the diagonal
    ("solve_triangular", lambda a, b: torch.linalg.solve_triangular(a, b, upper=False),
     lambda: [torch.randn(4, 4).tril() + 4 * torch.eye(4), torch.randn(4, 5)], 6 * 5, 4 * 5),
    ("solve_triangular_right", lambda a, b: torch.linalg.solve_triangular(a, b, upper=True, left=False),
     lambda: [torch.randn(4, 4).triu() + 4 * torch.eye(4), torch.randn(2, 4)], 6 * 2, 4 * 2),
    ("triangular_solve_legacy", lambda b, a: torch.triangular_solve(b, a).solution,  # (B, A): arguments reversed
     lambda: [torch.randn(4, 5), torch.randn(4, 4).triu() + 4 * torch.eye(4)], 6 * 5, 4 * 5),
    ("cholesky_solve", lambda b, a: torch.cholesky_solve(b, torch.linalg.cholesky(a)),
     lambda: [torch.randn(4, 2), spd(n=4)], 10 + 12 * 2, 10 + 8 * 2),
    ("qr_reduced", lambda a: torch.linalg.qr(a), lambda: [torch.randn(6, 4)], 86 + 68, 36 + 16),
    ("qr_r_only", lambda a: torch.linalg.qr(a, mode="r"), lambda: [torch.randn(6, 4)], 86, 36),
]


@pytest.mark.parametrize("fn, make, macs, extra", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_linalg_is_priced_with_lapacks_operation_counts(fn: Callable[..., object],
                                                         make: Callable[[], list[torch.Tensor]],
                                                         macs: int, extra: int) -> None:
    torch.manual_seed(0)
    r = count(Fn(fn), make())
    assert r.unsupported == {}
    assert (r.macs, r.extra_flops) == (macs, extra)
    assert {e.category for e in r.events if e.macs} == {Category.MATMUL}


@pytest.mark.parametrize("fn", [torch.linalg.svd, torch.linalg.eigh, torch.linalg.eig], ids=["svd", "eigh", "eig"])
def test_iterative_factorisations_stay_unsupported(fn: Callable[..., object]) -> None:
    """Their work depends on the values (iterations to converge): no formula, reported as such."""
    r = count(Fn(fn), [spd(n=4)])
    assert len(r.unsupported) == 1 and r.macs == 0


def test_a_cholesky_training_step_prices_its_backward_through_its_parts() -> None:
    """The backward of a factorisation runs as the operators it is made of (triangular solves and
    products), each priced: nothing is left unsupported."""
    a = spd(n=4).requires_grad_(True)
    r = count(Fn(lambda m: torch.linalg.cholesky(m).sum()), [a], pass_="train")
    assert r.unsupported == {} and r.phases["backward"].total.macs > 0


def test_counters_without_linalg_formulas_are_explained_by_a_linalg_cause() -> None:
    """EventRule(family="linalg") matches the events priced by flopaudit.reference.formulas.linalg only:
    torch.utils.flop_counter's and torch.profiler's rulesets name linalg as what they miss, the product
    beside it is counted as usual."""
    from flopaudit.reference.backend_rulesets import backend_rulesets
    from flopaudit.reference.pricing import predict
    from flopaudit.reference.rulesets import EventRule

    r = count(Fn(lambda a, b: (torch.linalg.cholesky(a), a @ b)), [spd(n=4), torch.randn(4, 3)])
    rule = EventRule("zero", family="linalg")
    assert [e.op for e in r.events if rule.matches(e)] == ["aten.linalg_cholesky_ex.default"]
    for backend in ("torch-flop-counter", "torch-profiler"):
        prediction = predict(r.events, r.module_call_records, backend_rulesets()[backend], backend)
        (cause,) = [c for c in prediction.contributions if "linalg" in c.rule]
        assert cause.macs == -10 and cause.kind == "unsupported", backend
