"""Batched conjugate gradient and TReg's data-consistency step ``(A^T A + lam I) x = A^T y + lam x0``."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..errors import InputError
from .linear import LinearOperator


def _dot(u: Tensor, v: Tensor) -> Tensor:
    """Per-sample inner product, summed over all dims but the batch dim (kept for broadcasting)."""
    return (u * v).flatten(1).sum(1).view(-1, *(1,) * (u.dim() - 1))


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den > 0``, else 0 (a converged sample stays put; no NaN in values or grads)."""
    ok = den > 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def conjugate_gradient(apply_A: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor | None = None,
                       iters: int = 10, tol: float = 0.0) -> Tensor:
    """Conjugate gradient for ``apply_A(x) = b`` with ``apply_A`` symmetric positive definite, batched.

    Each sample (dim 0) has its own alpha and beta. Stops early once every sample's residual norm
    ``||b - A x||`` is <= ``tol`` (``tol = 0``: runs all ``iters``); ``iters = 0`` returns ``x0``.
    """
    x = torch.zeros_like(b) if x0 is None else x0
    if iters == 0:
        return x
    r = b - apply_A(x)
    p, rr = r, _dot(r, r)
    for _ in range(iters):
        if tol > 0 and bool((rr.sqrt() <= tol).all()):
            break
        Ap = apply_A(p)
        alpha = _safe_div(rr, _dot(p, Ap))
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = _dot(r, r)
        p, rr = r + _safe_div(rr_new, rr) * p, rr_new
    return x


def normal_equations(op: LinearOperator, lam: float) -> Callable[[Tensor], Tensor]:
    """The map ``x -> A^T A x + lam x`` of the regularized normal equations."""
    return lambda x: op.adjoint(op.forward(x)) + lam * x


def solve_data_consistency(op: LinearOperator, y: Tensor, x0: Tensor, lam: float, iters: int = 10) -> Tensor:
    """TReg's data-consistency step: CG for ``(A^T A + lam I) x = A^T y + lam x0``, started from ``x0``."""
    if lam < 0:
        raise InputError(f"lam must be >= 0, got {lam}")
    return conjugate_gradient(normal_equations(op, lam), op.adjoint(y) + lam * x0, x0=x0, iters=iters)
