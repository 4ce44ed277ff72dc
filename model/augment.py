"""Training-time augmentation of (B, 28, 28) image batches, on the device, seeded.

Random shifts are MNIST's classic cheap regulariser; small rotations and scalings are the
next ones that the best non-convolutional MNIST results rely on (Simard et al., 2003;
Ciresan et al., 2010). Each image gets its own draw; a zero amount turns a transform off
and leaves the batch untouched, so configurations without augmentation train exactly as
before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["augment", "random_affine", "random_shift"]


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each image moved by its own (dy, dx) in [-max_shift, max_shift], zeros shifted in.

    Cheap enough to run per batch on the CPU: one pad and one gather, no Python loop.
    A vertical move changes which time step a row arrives at, a horizontal one which
    input unit sees a stroke; both are variations the model must be robust to.
    """
    b, h, w = x.shape  # (B, 28, 28)
    k = max_shift
    padded = F.pad(x, (k, k, k, k))  # (B, 28+2k, 28+2k)
    dy, dx = torch.randint(0, 2 * k + 1, (2, b), generator=generator).to(x.device)  # (B,) each
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, 28)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, 28)
    batch = torch.arange(b, device=x.device)[:, None, None]  # (B, 1, 1)
    return padded[batch, rows[:, :, None], cols[:, None, :]]  # (B, 28, 28)


def random_affine(x: Tensor, max_degrees: float, max_scale: float, generator: torch.Generator) -> Tensor:
    """Each image rotated by its own angle in [-max_degrees, max_degrees] and scaled by its
    own factor in [1 - max_scale, 1 + max_scale] about the centre (bilinear, zeros outside).
    """
    b = x.shape[0]
    u = torch.rand(2, b, generator=generator).to(device=x.device, dtype=x.dtype) * 2 - 1  # (2, B) in [-1, 1)
    angle = u[0] * math.radians(max_degrees)  # (B,)
    # affine_grid maps output coordinates to input ones: sampling at (1/s) R^-1 p shows
    # the image rotated by +angle and magnified by s.
    inv = 1.0 / (1.0 + u[1] * max_scale)  # (B,)
    cos, sin = torch.cos(angle) * inv, torch.sin(angle) * inv
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta, [b, 1, *x.shape[1:]], align_corners=False)  # (B, 28, 28, 2)
    return F.grid_sample(x[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def augment(x: Tensor, shift: int, rotate: float, scale: float, generator: torch.Generator) -> Tensor:
    """The configured augmentations in a fixed order (rotate/scale, then shift); a no-op when all are 0."""
    if rotate > 0 or scale > 0:
        x = random_affine(x, rotate, scale, generator)
    if shift > 0:
        x = random_shift(x, shift, generator)
    return x
