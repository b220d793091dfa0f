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

# training pixels (or voxels) the quantiles are taken from: enough for quantiles to 1e-3,
# and a large volume's one-hot encoding stays small
MAX_REFERENCE_VALUES = 4_000_000


def channel_values(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, ...)`` -> ``(C, N)``: every value of each channel."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def pixel_rows(image: torch.Tensor, colour: bool, limit: int = MAX_REFERENCE_VALUES):
    """The raw pixels of a training image or volume as one row of crops.

    Parameters
    ----------
    image : torch.Tensor
        Labels or grey levels ``(H, W)`` / ``(D, H, W)``, or colour ``(H, W, 3)``.
    colour : bool
        Whether the last axis holds the three colour channels.
    limit : int
        At most this many pixels, drawn with a fixed seed when there are more (the targets
        stay a pure function of the data, so a resumed run gets the same ones).

    Returns
    -------
    torch.Tensor
        ``(1, 1, N)`` (``(1, 1, N, 3)`` for colour), the shape the crop encoder reads.
    """
    flat = image.reshape(-1, 3) if colour else image.reshape(-1)
    if flat.shape[0] > limit:
        g = torch.Generator(device=flat.device).manual_seed(0)
        pick = torch.randperm(flat.shape[0], generator=g, device=flat.device)[:limit]
        flat = flat[pick]
    return flat.view(1, 1, *flat.shape)


def quantile_targets(images: list[torch.Tensor], n: int) -> torch.Tensor:
    """Per-channel quantiles of encoded training pixels at the ranks of ``n`` sorted values.

    Parameters
    ----------
    images : list of torch.Tensor
        Encoded pixels ``(B, C, ...)`` (values as the critic sees them), pooled.
    n : int
        Generated values per channel the targets are compared with.

    Returns
    -------
    torch.Tensor
        ``(C, n)`` float32, each row ascending: the quantiles at ``(i + 0.5) / n``.
    """
    vals = torch.cat([channel_values(im.float()) for im in images], dim=1).double()
    ordered, _ = torch.sort(vals, dim=1)
    # linear interpolation between order statistics, as torch.quantile (whose input size
    # is limited) computes it
    ranks = (torch.arange(n, dtype=torch.float64, device=vals.device) + 0.5) / n
    pos = ranks * (ordered.shape[1] - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp_max(ordered.shape[1] - 1)
    frac = pos - lo
    return torch.lerp(ordered[:, lo], ordered[:, hi], frac).float().contiguous()


def quantile_loss(fake: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the 1D Wasserstein distance between the values of ``fake``
    ``(B, C, ...)`` and the distribution whose sorted sample is ``targets`` ``(C, N)``
    (``N`` = values per channel of ``fake``)."""
    ordered, _ = torch.sort(channel_values(fake).float(), dim=1)
    return (ordered - targets).abs().mean()
