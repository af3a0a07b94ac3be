"""Linear operators (adjointness, forward against independent references) and the batched CG solver."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dreamsampler.operators import (Compose, Downsample, GaussianBlur, Identity, LinearOperator, PixelMask,
                                    conjugate_gradient, measure, normal_equations, solve_data_consistency)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def binary_mask(*shape: int, seed: int = 1) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) > 0.4).double()


CASES = {
    "mask_hw": (lambda: PixelMask(binary_mask(16, 16)), 16),
    "mask_1hw": (lambda: PixelMask(binary_mask(1, 16, 16)), 16),
    "mask_per_sample": (lambda: PixelMask(binary_mask(2, 1, 16, 16)), 16),
    "down2_16": (lambda: Downsample(2), 16),
    "down4_32": (lambda: Downsample(4), 32),
    "down8_64": (lambda: Downsample(8), 64),
    "down2_bilinear_noaa": (lambda: Downsample(2, mode="bilinear", antialias=False), 16),
    "blur61_64": (lambda: GaussianBlur(61, 5.0), 64),
    "blur5_16": (lambda: GaussianBlur(5, 1.0), 16),
    "blur61_kernel_larger_than_image": (lambda: GaussianBlur(61, 5.0), 16),
    "blur_then_down": (lambda: Compose([GaussianBlur(5, 1.0), Downsample(4)]), 32),
    "identity": (lambda: Identity(), 8),
}


@pytest.mark.parametrize("name", list(CASES))
def test_adjoint(name):
    make, n = CASES[name]
    A = make()
    x = rand(2, 3, n, n, seed=2)
    Ax = A(x)
    assert Ax.shape[-2:] == A.output_shape((n, n))
    y = rand(*Ax.shape, seed=3)
    lhs, rhs = (Ax * y).sum().item(), (x * A.adjoint(y)).sum().item()
    assert math.isclose(lhs, rhs, rel_tol=1e-5), (lhs, rhs)


@pytest.mark.parametrize("k,n", [(2, 16), (4, 32), (8, 64)])
def test_downsample_is_interpolate(k, n):
    x = rand(2, 3, n, n).float()
    ref = F.interpolate(x, size=(n // k, n // k), mode="bicubic", antialias=True, align_corners=False)
    out = Downsample(k)(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_blur_of_delta_is_outer_product_of_1d_gaussian():
    size, sigma, n, c = 61, 5.0, 64, 32
    x = torch.zeros(1, 1, n, n, dtype=torch.float64)
    x[..., c, c] = 1.0
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-t**2 / (2 * sigma**2))
    g = g / g.sum()
    ref = torch.zeros_like(x)
    ref[0, 0, c - 30:c + 31, c - 30:c + 31] = torch.outer(g, g)
    torch.testing.assert_close(GaussianBlur(size, sigma)(x), ref, rtol=0, atol=1e-15)


@pytest.mark.parametrize("size,sigma,n", [(5, 1.0, 16), (61, 5.0, 64)])
def test_blur_preserves_constant_interior(size, sigma, n):
    x = torch.full((2, 3, n, n), 0.7, dtype=torch.float64)
    r = size // 2
    out = GaussianBlur(size, sigma)(x)
    torch.testing.assert_close(out[..., r:n - r, r:n - r], x[..., r:n - r, r:n - r])
    assert out[..., 0, 0].max() < 0.7  # zero padding: mass leaks out at the border


def test_mask_zeroes_holes_and_keeps_known():
    mask = binary_mask(1, 1, 8, 8)
    x = rand(2, 3, 8, 8) + 10
    out = PixelMask(mask)(x)
    known = mask.expand_as(x).bool()
    assert (out[~known] == 0).all() and torch.equal(out[known], x[known])


def test_compose_applies_in_order():
    blur, down = GaussianBlur(5, 1.0), Downsample(2)
    x = rand(2, 3, 16, 16)
    torch.testing.assert_close(Compose([blur, down])(x), down(blur(x)), rtol=0, atol=0)
    assert Compose([blur, down]).output_shape((16, 16)) == (8, 8)


def test_measure_adds_the_given_noise():
    A, x, noise = Downsample(2), rand(2, 3, 8, 8), rand(2, 3, 4, 4, seed=5)
    torch.testing.assert_close(measure(A, x, 0.1, noise), A(x) + 0.1 * noise)
    assert torch.equal(measure(A, x), A(x))


def test_operators_build_from_yaml():
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--op", type=LinearOperator)
    cfg = parser.parse_string("""op:
  class_path: dreamsampler.operators.Compose
  init_args:
    ops:
      - class_path: dreamsampler.operators.GaussianBlur
        init_args: {size: 5, sigma: 1.0}
      - class_path: dreamsampler.operators.Downsample
        init_args: {factor: 4}
""")
    op = parser.instantiate_classes(cfg).op
    assert isinstance(op, Compose) and op.output_shape((32, 32)) == (8, 8)
    assert [type(o) for o in op.ops] == [GaussianBlur, Downsample] and op.ops[0].size == 5


# ----- conjugate gradient -----

def blur_mask_op(mask: torch.Tensor) -> Compose:
    return Compose([GaussianBlur(5, 1.0), PixelMask(mask)])


def dense(apply_A, shape: tuple[int, ...]) -> torch.Tensor:
    """The matrix of a linear map on one sample of ``shape``, column j = apply_A(e_j)."""
    n = math.prod(shape)
    basis = torch.eye(n, dtype=torch.float64).view(n, *shape)
    return apply_A(basis).reshape(n, n).T


def test_data_consistency_matches_dense_solve():
    lam, shape = 1e-2, (1, 6, 6)
    masks = binary_mask(2, 1, 6, 6)
    x_true, x0 = rand(2, *shape, seed=7), rand(2, *shape, seed=8)
    A = blur_mask_op(masks)
    y = A(x_true)
    x = solve_data_consistency(A, y, x0, lam, iters=80)
    for i in range(2):
        A_i = blur_mask_op(masks[i:i + 1])
        M = dense(normal_equations(A_i, lam), shape)
        rhs = (A_i.adjoint(y[i:i + 1]) + lam * x0[i:i + 1]).flatten()
        ref = torch.linalg.solve(M, rhs).view(shape)
        torch.testing.assert_close(x[i], ref, rtol=0, atol=1e-6)


def test_cg_samples_are_independent():
    masks = binary_mask(2, 1, 6, 6)
    b, x0 = rand(2, 1, 6, 6, seed=9), rand(2, 1, 6, 6, seed=10)
    batch = conjugate_gradient(normal_equations(blur_mask_op(masks), 1e-2), b, x0, iters=4)
    for i in range(2):
        alone = conjugate_gradient(normal_equations(blur_mask_op(masks[i:i + 1]), 1e-2), b[i:i + 1], x0[i:i + 1],
                                   iters=4)
        torch.testing.assert_close(batch[i:i + 1], alone, rtol=0, atol=1e-12)


def test_cg_zero_iters_returns_x0_and_tol_stops_early():
    calls = []

    def apply_A(x):
        calls.append(1)
        return 2 * x

    b, x0 = rand(2, 1, 4, 4), rand(2, 1, 4, 4, seed=4)
    assert torch.equal(conjugate_gradient(apply_A, b, x0, iters=0), x0)
    assert not calls
    torch.testing.assert_close(conjugate_gradient(apply_A, b, iters=5, tol=1e-12), b / 2)
    assert len(calls) == 2  # initial residual and one step (exact for 2 I); then the tolerance stops it


def test_cg_converged_sample_gives_no_nan():
    A = normal_equations(blur_mask_op(binary_mask(1, 1, 6, 6)), 1e-2)
    b = rand(2, 1, 6, 6)
    b[0] = 0  # sample 0 is solved exactly by x0 = 0 from the start
    x = conjugate_gradient(A, b, torch.zeros_like(b), iters=60)
    assert torch.isfinite(x).all() and (x[0] == 0).all()
    torch.testing.assert_close(A(x)[1], b[1], rtol=0, atol=1e-8)


# ----- clear errors -----

def test_downsample_non_divisible_size():
    with pytest.raises(ValueError, match=r"H=15, W=16"):
        Downsample(2)(torch.zeros(1, 1, 15, 16))


@pytest.mark.parametrize("kwargs", [{"size": 4}, {"size": 0}, {"sigma": 0.0}, {"sigma": -1.0}])
def test_blur_bad_config(kwargs):
    with pytest.raises(ValueError, match="size|sigma"):
        GaussianBlur(**kwargs)


def test_measure_needs_noise_when_sigma_positive():
    with pytest.raises(ValueError, match="noise"):
        measure(Identity(), torch.zeros(1, 1, 4, 4), sigma_y=0.1)
