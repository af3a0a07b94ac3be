"""Linear measurement operators A on batched images (B, C, H, W): forward ``A x`` and exact adjoint ``A^T y``.

Each operator is a plain class with typed ``__init__`` arguments (buildable by jsonargparse from
``class_path``/``init_args``), no state beyond its config tensors, and moves those tensors to the input's
device and dtype. ``measure`` forms ``y = A x + sigma_y n`` with the noise ``n`` given by the caller.
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError


def _hw(x: Tensor) -> tuple[int, int]:
    if x.dim() != 4:
        raise InputError(f"expected a batched image (B, C, H, W), got shape {tuple(x.shape)}")
    return x.shape[-2], x.shape[-1]


class LinearOperator:
    """A linear map A: ``forward(x) = A x``, ``adjoint(y) = A^T y``, ``output_shape((H, W))`` of ``A x``."""

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def adjoint(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def output_shape(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        return tuple(input_hw)

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)


class Identity(LinearOperator):
    """A = I."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        return y


class PixelMask(LinearOperator):
    """Inpainting mask, A x = mask * x (self-adjoint); mask 1 = known pixel, 0 = hole.

    ``mask`` is (H, W), (1, H, W) or (B or 1, 1, H, W) and broadcasts over channels (and the batch if 1).
    """

    def __init__(self, mask: Tensor) -> None:
        if mask.dim() not in (2, 3, 4) or (mask.dim() >= 3 and mask.shape[-3] != 1):
            raise InputError(f"mask must be (H, W), (1, H, W) or (B, 1, H, W), got shape {tuple(mask.shape)}")
        self.mask = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))

    def forward(self, x: Tensor) -> Tensor:
        if _hw(x) != tuple(self.mask.shape[-2:]):
            raise InputError(f"image is {_hw(x)} but the mask is {tuple(self.mask.shape[-2:])}")
        return self.mask.to(x) * x

    adjoint = forward


class Downsample(LinearOperator):
    """x k down-sampling by ``F.interpolate`` (antialiased bicubic by default); adjoint by autograd (exact)."""

    def __init__(self, factor: int, mode: Literal["bicubic", "bilinear"] = "bicubic", antialias: bool = True) -> None:
        if factor < 1:
            raise InputError(f"Downsample factor must be >= 1, got {factor}")
        self.factor, self.mode, self.antialias = factor, mode, antialias

    def output_shape(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        h, w = input_hw
        k = self.factor
        if h % k or w % k:
            raise InputError(f"Downsample x{k} needs H and W divisible by {k}, got H={h}, W={w}")
        return h // k, w // k

    def forward(self, x: Tensor) -> Tensor:
        size = self.output_shape(_hw(x))
        return F.interpolate(x, size=size, mode=self.mode, antialias=self.antialias, align_corners=False)

    def adjoint(self, y: Tensor) -> Tensor:
        h, w = _hw(y)
        x = y.new_zeros(*y.shape[:2], h * self.factor, w * self.factor)
        _, vjp = torch.func.vjp(self.forward, x)  # the forward is linear: its VJP is A^T at any point
        return vjp(y)[0]


def gaussian_kernel_1d(size: int, sigma: float) -> Tensor:
    """Normalized 1-D Gaussian of odd ``size`` (float64): ``exp(-t^2 / (2 sigma^2))``, t = -size//2 .. size//2."""
    if size < 1 or size % 2 == 0:
        raise InputError(f"GaussianBlur size must be a positive odd integer, got {size}")
    if not sigma > 0:
        raise InputError(f"GaussianBlur sigma must be > 0, got {sigma}")
    t = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-t**2 / (2 * sigma**2))
    return g / g.sum()


def _separable(x: Tensor, g: Tensor, conv: Callable[..., Tensor]) -> Tensor:
    """Apply the 1-D kernel ``g`` along H then W of every channel with ``conv`` (conv2d or its transpose)."""
    B, C, H, W = x.shape
    p = g.numel() // 2
    g = g.to(x)
    z = conv(x.reshape(B * C, 1, H, W), g.view(1, 1, -1, 1), padding=(p, 0))
    z = conv(z, g.view(1, 1, 1, -1), padding=(0, p))
    return z.reshape(B, C, H, W)


class GaussianBlur(LinearOperator):
    """Separable normalized Gaussian blur, same-size output, ZERO padding outside the image.

    Zero padding makes A an exact Toeplitz map whose adjoint is the transposed convolution (for this
    symmetric kernel, the same blur), so ``adjoint`` is exact. Near the border (within size//2 pixels)
    mass leaks out: a constant image is preserved only in the interior. A kernel larger than the image is
    allowed and still exact: the zero padding simply covers more than the image.
    """

    def __init__(self, size: int = 61, sigma: float = 5.0) -> None:
        self.size, self.sigma = size, sigma
        self.kernel = gaussian_kernel_1d(size, sigma)

    def forward(self, x: Tensor) -> Tensor:
        _hw(x)
        return _separable(x, self.kernel, F.conv2d)

    def adjoint(self, y: Tensor) -> Tensor:
        _hw(y)
        return _separable(y, self.kernel, F.conv_transpose2d)


class Compose(LinearOperator):
    """A = A_n ∘ … ∘ A_1: ``ops`` applied in the given order; the adjoint applies their adjoints in reverse."""

    def __init__(self, ops: Sequence[LinearOperator]) -> None:
        self.ops = list(ops)

    def output_shape(self, input_hw: tuple[int, int]) -> tuple[int, int]:
        for op in self.ops:
            input_hw = op.output_shape(input_hw)
        return tuple(input_hw)

    def forward(self, x: Tensor) -> Tensor:
        for op in self.ops:
            x = op.forward(x)
        return x

    def adjoint(self, y: Tensor) -> Tensor:
        for op in reversed(self.ops):
            y = op.adjoint(y)
        return y


def measure(op: LinearOperator, x: Tensor, sigma_y: float = 0.0, noise: Tensor | None = None) -> Tensor:
    """Measurement ``y = A x + sigma_y * noise``; the noise comes from the caller (no global RNG)."""
    if sigma_y < 0:
        raise InputError(f"sigma_y must be >= 0, got {sigma_y}")
    y = op.forward(x)
    if sigma_y == 0:
        return y
    if noise is None:
        raise InputError(f"sigma_y={sigma_y} > 0 needs a noise tensor of shape {tuple(y.shape)}")
    if noise.shape != y.shape:
        raise InputError(f"noise has shape {tuple(noise.shape)}, the measurement {tuple(y.shape)}")
    return y + sigma_y * noise.to(y)
