"""Value-distribution matching for SliceGAN generators.

The critic sees 2D slices, so it judges first-order statistics (phase fractions, grey
levels) only through texture, and a short CPU run ends with them several points off. The
1D Wasserstein distance between the generated voxels' values and the training images'
pixel values, per channel, measures that directly and cheaply: sort the generated values,
compare them with the images' quantiles at the same ranks. For n-phase images the
quantiles are 0 and 1 split at the phase fraction, so the term pulls each phase's volume
fraction to the image's (and the softmax towards one-hot); for grey and colour images it
matches each channel's histogram.
"""

from __future__ import annotations

import torch

# values per channel taken from the training images for their quantiles: enough for
# quantiles to 1e-3, and within torch.quantile's input limit for any volume
MAX_REFERENCE_VALUES = 4_000_000


def channel_values(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, ...)`` -> ``(C, N)``: every value of each channel."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def quantile_targets(
    images: list[torch.Tensor], n: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Per-channel quantiles of encoded training images at the ranks of ``n`` sorted values.

    Parameters
    ----------
    images : list of torch.Tensor
        Encoded images ``(B, C, ...)`` (values as the critic sees them), pooled.
    n : int
        Generated values per channel the targets are compared with.
    generator : torch.Generator, optional
        Draws the subsample when the images hold over ``MAX_REFERENCE_VALUES`` values per
        channel.

    Returns
    -------
    torch.Tensor
        ``(C, n)`` float32, each row ascending: the quantiles at ``(i + 0.5) / n``.
    """
    vals = torch.cat([channel_values(im.float()) for im in images], dim=1)
    if vals.shape[1] > MAX_REFERENCE_VALUES:
        pick = torch.randperm(vals.shape[1], generator=generator, device=vals.device)
        vals = vals[:, pick[:MAX_REFERENCE_VALUES]]
    ranks = (torch.arange(n, dtype=torch.float64, device=vals.device) + 0.5) / n
    return torch.quantile(vals.double(), ranks, dim=1).T.float().contiguous()


def quantile_loss(fake: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the 1D Wasserstein distance between the values of ``fake``
    ``(B, C, ...)`` and the distribution whose sorted sample is ``targets`` ``(C, N)``
    (``N`` = values per channel of ``fake``)."""
    ordered, _ = torch.sort(channel_values(fake).float(), dim=1)
    return (ordered - targets).abs().mean()
