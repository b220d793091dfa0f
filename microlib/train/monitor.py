"""Quality monitoring while training, and the plateau stop rule.

Every check generates one small volume from a fixed latent (eval mode, no gradients, a
private random generator, so monitoring never changes the training trajectory) and
compares it with the training data:

``vf_err_pts`` (n-phase)
    Largest per-phase volume-fraction difference, in percentage points.
``sa_err_pct``
    Surface-density error in percent: ``100 |s_3D - s_2D| / s_2D``. For n-phase labels
    ``s`` is the share of neighbouring pixel pairs with different labels (the 3D value
    counts pairs along all three axes, i.e. the same share over the volume's slices in
    every orientation); for grey and colour it is the mean absolute difference of
    neighbouring values (0..1), the grey analogue.
``anisotropy``
    ``max / min`` over the three axes of the volume's per-axis surface density (1 =
    isotropic).
``grey_mean_err``, ``grey_std_err`` (grey, colour)
    Differences of the mean and standard deviation of the values, in grey levels
    (0..255).
``score``
    The combined score the stop rule watches (lower is better): n-phase
    ``vf_err_pts + sa_err_pct / 10``; grey and colour
    ``100 (grey_mean_err + grey_std_err) / 255 + sa_err_pct / 10``.

The reference values come from every training source: the mean over the three images of
an anisotropic run, or the 3D volume itself when training on a volume.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from microlib.slicegan.networks import generator_output_size
from microlib.train.data import TrainingSet
from microlib.validate import surface_area_density, volume_fractions

MONITOR_COLUMNS = [
    "vf_err_pts",
    "sa_err_pct",
    "anisotropy",
    "grey_mean_err",
    "grey_std_err",
    "score",
]
MONITOR_SEED = 1234  # the fixed latent of every check


# --------------------------------------------------------------------------- statistics


def grey_surface_per_axis(values: np.ndarray, spatial_ndim: int) -> np.ndarray:
    """Mean absolute difference of neighbouring uint8 values, scaled to 0..1, along each of
    the first ``spatial_ndim`` axes (a trailing RGB axis is averaged over)."""
    a = np.asarray(values, dtype=np.float32) / 255.0
    return np.array([float(np.abs(np.diff(a, axis=ax)).mean()) for ax in range(spatial_ndim)])


def data_statistics(array: np.ndarray, image_type: str, nc: int) -> dict:
    """Statistics of one 2D image or 3D volume in canonical form.

    Returns
    -------
    dict
        ``vf`` (n-phase fractions or None), ``surface`` (total), ``per_axis`` (surface per
        spatial axis), ``mean``, ``std`` (grey levels; None for n-phase).
    """
    a = np.asarray(array)
    if image_type == "nphase":
        sa = surface_area_density(a, nc)
        return {
            "vf": np.asarray(volume_fractions(a, nc), dtype=np.float64),
            "surface": float(sa["total"]),
            "per_axis": np.asarray(sa["per_axis"], dtype=np.float64),
            "mean": None,
            "std": None,
        }
    per_axis = grey_surface_per_axis(a, a.ndim - 1 if image_type == "colour" else a.ndim)
    return {
        "vf": None,
        "surface": float(per_axis.mean()),
        "per_axis": per_axis,
        "mean": float(a.mean()),
        "std": float(a.std()),
    }


def reference_statistics(tset: TrainingSet) -> dict:
    """Statistics of the training data, averaged over its sources (see module docstring)."""
    stats = [data_statistics(s, tset.image_type, tset.nc) for s in tset.sources]
    out = {"surface": float(np.mean([s["surface"] for s in stats]))}
    if tset.image_type == "nphase":
        out["vf"] = np.mean([s["vf"] for s in stats], axis=0)
    else:
        out["mean"] = float(np.mean([s["mean"] for s in stats]))
        out["std"] = float(np.mean([s["std"] for s in stats]))
    return out


def compare(reference: dict, volume: np.ndarray, image_type: str, nc: int) -> dict[str, float]:
    """The monitor columns (see module docstring) of ``volume`` against ``reference``.

    Columns that do not apply to ``image_type`` are NaN.
    """
    v = data_statistics(volume, image_type, nc)
    nan = float("nan")
    ref_s = reference["surface"]
    sa_err = 100.0 * abs(v["surface"] - ref_s) / ref_s if ref_s > 0 else nan
    per_axis = v["per_axis"]
    aniso = float(per_axis.max() / per_axis.min()) if per_axis.min() > 0 else float("inf")
    row = {
        "vf_err_pts": nan,
        "sa_err_pct": sa_err,
        "anisotropy": aniso,
        "grey_mean_err": nan,
        "grey_std_err": nan,
    }
    sa_term = sa_err / 10.0 if math.isfinite(sa_err) else 10.0
    if image_type == "nphase":
        row["vf_err_pts"] = float(100.0 * np.abs(v["vf"] - reference["vf"]).max())
        row["score"] = row["vf_err_pts"] + sa_term
    else:
        row["grey_mean_err"] = abs(v["mean"] - reference["mean"])
        row["grey_std_err"] = abs(v["std"] - reference["std"])
        row["score"] = 100.0 * (row["grey_mean_err"] + row["grey_std_err"]) / 255.0 + sa_term
    return row


# --------------------------------------------------------------------------- generation


def monitor_latent_edge(lz: int, gk, gs, gp, size: int) -> int:
    """Smallest latent edge (at least the training one) whose output reaches ``size``."""
    m = int(lz)
    while generator_output_size(m, gk, gs, gp) < size and m < 64:
        m += 1
    return m


@torch.no_grad()
def monitor_volume(
    net: torch.nn.Module,
    image_type: str,
    nz: int,
    latent_edge: int,
    device: torch.device,
    seed: int = MONITOR_SEED,
) -> np.ndarray:
    """One volume from a fixed latent as uint8 labels / grey / RGB (``net`` in eval mode).

    The latent is drawn on the CPU from its own generator: the training random streams are
    untouched.
    """
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn(1, nz, latent_edge, latent_edge, latent_edge, generator=gen).to(device)
    out = net(z).float()[0]
    if image_type == "nphase":
        return out.argmax(0).to(torch.uint8).cpu().numpy()
    x = torch.round(out * 255.0).clamp_(0, 255).to(torch.uint8)
    return (x[0] if image_type == "grayscale" else x.permute(1, 2, 3, 0)).cpu().numpy()


# --------------------------------------------------------------------------- stop rule


@dataclass
class PlateauStop:
    """Stop when the score has not improved for ``patience`` consecutive checks.

    Never stops before ``min_iteration``; ``patience`` 0 turns the rule off (the run then
    always goes to its iteration cap). The best score and iteration are tracked either
    way (they are recorded in ``_params.json``).
    """

    patience: int = 0
    min_iteration: int = 0
    best_score: float = float("inf")
    best_iteration: int = -1
    since_best: int = 0

    def update(self, iteration: int, score: float) -> bool:
        """Record one check; True when training should stop now."""
        if math.isfinite(score) and score < self.best_score:
            self.best_score, self.best_iteration, self.since_best = float(score), int(iteration), 0
        else:
            self.since_best += 1
        return (
            self.patience > 0
            and iteration >= self.min_iteration
            and self.since_best >= self.patience
        )

    def state_dict(self) -> dict:
        return {
            "best_score": self.best_score,
            "best_iteration": self.best_iteration,
            "since_best": self.since_best,
        }

    def load_state_dict(self, d: dict) -> None:
        self.best_score = float(d.get("best_score", float("inf")))
        self.best_iteration = int(d.get("best_iteration", -1))
        self.since_best = int(d.get("since_best", 0))
