"""The demo library's family: three isotropic two-phase structures of one class.

Thresholded Gaussian random fields at their median (equal phase fractions) with Gaussian
covariance widths 2.0 / 3.3 / 5.3 px, i.e. two-point-correlation lengths of about 3 / 5 /
8 px: one material imaged at three coarsening stages, the input of one family
(AdaIN-conditioned) generator (``config/demo.yaml``, ``families: blobs``). Each member
is an ordinary record of the site, with no scale bar, so the pipeline annotates,
segments and in-paints it like any other entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from microlib.demo_site.records import Record
from microlib.demo_site.scale_bar import BarSpec
from microlib.demo_site.structures import gaussian_random_field, image_phases, threshold_field

FAMILY_NAME = "blobs"
# (DoITPoMS-style number, Gaussian covariance width in px, code, ageing time in h)
FAMILY_MEMBERS = ((36, 2.0, 0.15, 1), (37, 3.3, 0.35, 10), (38, 5.3, 0.6, 100))
GREY_LEVELS = [66.0, 186.0]
SHAPE = (320, 320)


def family_entries(rng: np.random.Generator) -> list[dict[str, Any]]:
    """The family's entry specifications (the format of :func:`build_entries`).

    Parameters
    ----------
    rng : numpy.random.Generator
        The family's own stream; each member draws from it in order.

    Returns
    -------
    list of dict
        One included two-phase entry per member, with ``family`` = ``{"name", "code"}``.
    """
    entries = []
    for number, width, code, hours in FAMILY_MEMBERS:
        labels = np.where(threshold_field(gaussian_random_field(SHAPE, width, rng), 0.5), 0, 1)
        entries.append(
            dict(
                number=number,
                kind=f"coarsening series, {hours} h",
                data_type="twophase",
                included=True,
                criterion=None,
                family={"name": FAMILY_NAME, "code": code},
                labels=labels,
                img=image_phases(labels, GREY_LEVELS, rng, blur=0.6, noise=5.0),
                grey_levels=list(GREY_LEVELS),
                bar=BarSpec(placement="none"),
                record=Record(
                    brief=f"Bicontinuous two-phase glass after {hours} h of phase separation",
                    keywords=["spinodal decomposition", "coarsening", "glass"],
                    categories="Ceramic",
                    composition="SiO2 70 wt%, B2O3 20 wt%, Na2O 10 wt%",
                    technique="Scanning electron microscopy (secondary electrons)",
                    further=[
                        f"Held at 650 °C for {hours} h; the sodium-borate-rich phase was "
                        "leached and appears dark (fictional series)."
                    ],
                    licence="cc",
                ),
            )
        )
    return entries


__all__ = ["FAMILY_MEMBERS", "FAMILY_NAME", "family_entries"]
