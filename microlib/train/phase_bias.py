"""Phase-fraction calibration of a trained n-phase generator.

A generator's phase fractions wander by several points between checkpoints of a short run
(the demo's 003 read 6.9, 5.9 and 3.2 points off at iterations 300, 500 and 600) while its
shapes barely change: the critic judges fractions only through texture. Segmenting a grey
volume at the threshold that gives the known volume fraction is the standard remedy in
tomography; the n-phase analogue is an offset per phase added to the generator's logits
before the argmax. The offsets are fitted once, after training, on a large calibration
volume from latents no generation seed draws, stored with the model and applied by every
later generation. They move voxels across phase boundaries only where the generator was
undecided, so the shapes stay the generator's own; what they fix is the first-order
statistic, and the validation still measures everything else on an independent cube.
"""

from __future__ import annotations

import numpy as np
import torch

from microlib.slicegan.networks import generator_geometry, generator_output_size

# latents of the calibration volume come from their own stream, never a generation seed
CALIBRATION_SEED = 917_203
# voxels generated for the fit: two 128^3 cubes' worth, so a cube-to-cube swing of a
# coarse structure averages out; the fit reads a random subset of FIT_VOXELS of them
CALIBRATION_VOXELS = 2 * 128**3
FIT_VOXELS = 1 << 20


def target_fractions(sources: list[np.ndarray], nc: int) -> np.ndarray:
    """Phase fractions of the training images (labels ``0..nc-1``), pooled.

    Returns
    -------
    ndarray of float64, (nc,)
    """
    counts = np.zeros(int(nc), dtype=np.float64)
    for a in sources:
        counts += np.bincount(np.asarray(a).ravel(), minlength=nc)[:nc]
    return counts / max(counts.sum(), 1.0)


def label_fractions(logits: torch.Tensor, offsets: np.ndarray | None = None) -> np.ndarray:
    """Phase fractions of ``argmax(logits + offsets)`` over the ``N`` voxels of ``(nc, N)``
    logits (no offsets: the plain argmax)."""
    x = logits.float()
    if offsets is not None:
        x = x + torch.as_tensor(offsets, dtype=x.dtype, device=x.device)[:, None]
    counts = torch.bincount(x.argmax(0), minlength=x.shape[0])
    return counts.double().cpu().numpy() / x.shape[1]


def fit_phase_bias(
    logits: torch.Tensor, target: np.ndarray, tol: float = 5e-4, max_sweeps: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``b`` such that ``argmax(logits + b)`` has the phase fractions ``target``.

    Parameters
    ----------
    logits : torch.Tensor
        ``(nc, N)`` logits (or log-probabilities) of ``N`` voxels.
    target : ndarray, (nc,)
        Phase fractions to reach (sum 1).
    tol : float
        Stop when every fraction is within this of its target.
    max_sweeps : int
        At most this many passes over the phases.

    Returns
    -------
    offsets : ndarray of float64, (nc,)
        Mean zero. Each phase in turn gets the offset that gives it exactly its target
        fraction against the others' current offsets (a quantile of its margin), repeated
        until all fractions hold: one step for two phases.
    fractions : ndarray of float64, (nc,)
        The fractions the offsets give on ``logits``.
    """
    x = logits.float()
    nc, n = x.shape
    tgt = np.clip(np.asarray(target, dtype=np.float64), 0.0, 1.0)
    b = np.zeros(nc)
    for _ in range(max_sweeps):
        for k in range(nc):
            others = x + torch.as_tensor(b, dtype=x.dtype, device=x.device)[:, None]
            others[k] = -torch.inf
            # phase k wins where b_k > margin: the k-th smallest margin sets its fraction
            margin = (others.max(0).values - x[k]).double()
            m = int(round(tgt[k] * n))
            if m <= 0:
                b[k] = float(margin.min()) - 1.0
            elif m >= n:
                b[k] = float(margin.max()) + 1.0
            else:
                lo = float(torch.kthvalue(margin, m).values)
                hi = float(torch.kthvalue(margin, m + 1).values)
                b[k] = 0.5 * (lo + hi)
        b -= b.mean()
        f = label_fractions(x, b)
        if float(np.abs(f - tgt).max()) < tol:
            break
    return b, f


@torch.no_grad()
def calibration_logits(
    net: torch.nn.Module,
    nz: int,
    gk,
    gs,
    gp,
    device: torch.device,
    voxels: int = CALIBRATION_VOXELS,
    seed: int = CALIBRATION_SEED,
) -> torch.Tensor:
    """Log-probabilities ``(nc, N)`` from ``net`` (eval mode, softmax output): about
    ``voxels`` voxels generated in cubes of about 128^3 from latents of ``seed``, of which
    a random subset of at most :data:`FIT_VOXELS` is kept."""
    geo = generator_geometry(gk, gs, gp)
    edge = min(128, round(voxels ** (1 / 3)))
    lz = geo.latent_for(edge)
    per = generator_output_size(lz, gk, gs, gp)
    cubes = max(1, round(voxels / per**3))
    gen = torch.Generator().manual_seed(int(seed))
    parts = []
    for _ in range(cubes):
        z = torch.randn(1, nz, lz, lz, lz, generator=gen).to(device)
        p = net(z).float()[0]
        parts.append(torch.log(p.clamp_min(1e-38)).flatten(1).cpu())
    out = torch.cat(parts, dim=1)
    if out.shape[1] <= FIT_VOXELS:
        return out
    # a random subset: a regular stride would keep one parity class of the transposed
    # convolutions' voxel lattice, whose fractions differ from the whole's
    keep = torch.randperm(out.shape[1], generator=gen)[:FIT_VOXELS]
    return out[:, keep]


def phase_bias_record(
    net: torch.nn.Module,
    nz: int,
    gk,
    gs,
    gp,
    sources: list[np.ndarray],
    nc: int,
    device: torch.device,
) -> dict:
    """Fit the offsets of a trained n-phase generator; the ``phase_bias`` record of its
    ``_params.json``.

    Returns
    -------
    dict
        ``offsets`` (per phase, added to the logits), ``target_vf`` (the training
        images'), ``raw_vf`` and ``fitted_vf`` (the calibration volume's fractions without
        and with the offsets), ``voxels`` fitted on and the latent ``seed``.
    """
    target = target_fractions(sources, nc)
    logits = calibration_logits(net, nz, gk, gs, gp, device)
    raw = label_fractions(logits)
    offsets, fitted = fit_phase_bias(logits, target)
    return {
        "offsets": [round(float(v), 6) for v in offsets],
        "target_vf": [round(float(v), 6) for v in target],
        "raw_vf": [round(float(v), 6) for v in raw],
        "fitted_vf": [round(float(v), 6) for v in fitted],
        "voxels": int(logits.shape[1]),
        "seed": CALIBRATION_SEED,
    }
