"""Isotropy term for isotropic SliceGAN generators.

The critic judges one slice at a time through a small receptive field, so a generator can
lay its features along one in-plane direction (often a diagonal) in one slicing plane and
still pass: the demo's cubes showed streaks whose gradient structure tensor had an
eigenvalue ratio of 1.3-1.6 where the image's was 1.0-1.1. This term measures that on the
generator's soft output: in each of the three slicing planes, the structure tensor pooled
over every slice of the batch, and its coherence ``(r - 1) / (r + 1)`` for the eigenvalue
ratio ``r`` (0 when isotropic). That is the quantity the validation's ``streaks_3d`` flag
reads on the argmax cube.

A batch of a few small volumes holds a few features only, so even an isotropic generator
shows some coherence there, in a new direction every batch; penalising each batch's
coherence pushed a generator of large straight-edged grains (the demo's 005) to ragged,
speckled boundaries, whose isotropic texture lowers it (surface area 65 % over its
image's), and a floor at real crops' coherence for as many crops could not fit both small
and large features. A streak is the generator's *systematic* direction, the same in every
batch. So the term follows the normalised tensors in a running mean over recent batches
(momentum 0.95, about 20 batches) and penalises the squared coherence of that mean: the
random direction of one batch averages out, the push scales with the systematic
anisotropy and vanishes when there is none.

The tensor is taken on the output smoothed at the features' scale (a Gaussian of 2
voxels): on the raw soft output, a generator trained with the term lowered it by adding a
faint lattice of period 4 voxels, whose isotropic gradient energy dilutes the anisotropy
(the cube's lattice score rose from 1.0 to 1.5 times the image's).
"""

from __future__ import annotations

import math

import torch

SMOOTH_SIGMA = 2.0


def _gaussian_taps(sigma: float, device: torch.device) -> torch.Tensor:
    r = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def smooth(x: torch.Tensor, sigma: float = SMOOTH_SIGMA, dims=(2, 3, 4)) -> torch.Tensor:
    """Separable Gaussian blur of ``x`` along ``dims`` without padding (valid region only,
    so no border is invented). Weighted sums of shifted views: on one CPU thread a third
    faster than single-channel 3D convolutions, forward and backward."""
    taps = _gaussian_taps(sigma, x.device).tolist()
    k = len(taps)
    for dim in dims:
        n = x.shape[dim] - k + 1
        x = sum(w * x.narrow(dim, i, n) for i, w in enumerate(taps))
    return x


def plane_tensors(fake: torch.Tensor) -> torch.Tensor:
    """Pooled 2x2 gradient structure tensors of the slices normal to z, y and x.

    Parameters
    ----------
    fake : torch.Tensor
        Volumes ``(B, C, Z, Y, X)`` (soft phase probabilities or grey levels).

    Returns
    -------
    torch.Tensor
        ``(3, 3)``: per plane ``(J_aa, J_bb, J_ab)`` summed over batch, channels and voxels,
        ``a`` and ``b`` the plane's in-plane axes in (z, y, x) order. Central differences
        on the interior, as the validation computes them.
    """
    x = fake.float()
    gz = x[:, :, 2:, 1:-1, 1:-1] - x[:, :, :-2, 1:-1, 1:-1]
    gy = x[:, :, 1:-1, 2:, 1:-1] - x[:, :, 1:-1, :-2, 1:-1]
    gx = x[:, :, 1:-1, 1:-1, 2:] - x[:, :, 1:-1, 1:-1, :-2]
    zz, yy, xx = (gz * gz).sum(), (gy * gy).sum(), (gx * gx).sum()
    zy, zx, yx = (gz * gy).sum(), (gz * gx).sum(), (gy * gx).sum()
    return torch.stack(
        [
            torch.stack([yy, xx, yx]),  # slices normal to z
            torch.stack([zz, xx, zx]),  # normal to y
            torch.stack([zz, yy, zy]),  # normal to x
        ]
    )


def normalised_planes(fake: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Per plane ``(J_aa, J_bb, J_ab) / (J_aa + J_bb)`` of the smoothed volumes
    ``(B, C, Z, Y, X)``: a ``(3, 3)`` tensor (z, y, x)."""
    t = plane_tensors(smooth(fake.float()))
    return t / (t[:, :1] + t[:, 1:2]).clamp_min(eps)


def coherence(planes: torch.Tensor) -> torch.Tensor:
    """``(r - 1) / (r + 1)`` of normalised plane tensors ``(3, 3)`` (eigenvalue ratio ``r``),
    per plane."""
    a, b, ab = planes[:, 0], planes[:, 1], planes[:, 2]
    return torch.sqrt((a - b) ** 2 + 4.0 * ab**2 + 1e-12)


def orientation_loss(
    fake: torch.Tensor, history: torch.Tensor | None, momentum: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared coherence of the running mean of the batches' normalised plane tensors.

    Parameters
    ----------
    fake : torch.Tensor
        Generated volumes ``(B, C, Z, Y, X)``, smoothed here (:func:`smooth`).
    history : torch.Tensor or None
        The running mean so far (``(3, 3)``, detached), None at the first batch.
    momentum : float
        Weight of the history in the mean.

    Returns
    -------
    loss : torch.Tensor
        Scalar: the sum over planes of the mean's squared coherence, divided by
        ``1 - momentum`` so that its gradient through this batch does not shrink with
        the history's weight.
    mean : torch.Tensor
        The updated running mean (detached): the next call's ``history``.
    """
    now = normalised_planes(fake)
    if history is None:
        mixed, scale = now, 1.0
    else:
        mixed = momentum * history.to(now.dtype) + (1.0 - momentum) * now
        scale = 1.0 / (1.0 - momentum)
    return scale * (coherence(mixed) ** 2).sum(), mixed.detach()
