"""The built-in demo library: a small DoITPoMS-shaped site with known ground truth.

Procedural micrographs (Gaussian random fields, Voronoi grains, stain models) are imaged
with realistic defects (slight blur, grey-level noise, phase grey levels away from 0/255,
JPEG compression) and get a rendered scale bar (a solid bar plus a text label) in one of
several placements. Record pages follow the DoITPoMS layout the scraper parses. Every
entry is made-up and credited to a fictional "MicroLib demo" contributor.

- :mod:`microlib.demo_site.structures`: random fields, grains, the imaging model.
- :mod:`microlib.demo_site.scale_bar`: scale bars, frames, JPEG encoding.
- :mod:`microlib.demo_site.records`: record pages and the fields a scraper should find.
- :mod:`microlib.demo_site.catalogue`: the entries and why each one is in the library.
- :mod:`microlib.demo_site.site`: every file of the site and its ground truth.

The library covers what the pipeline must get right: five entries to include and one
entry failing each exclusion criterion, plus a record page without a record and id gaps.
Everything here is pure: :func:`build_site` returns the site's files as bytes and the
ground truth as a dict; ``microlib.commands.demo_site`` writes them.
"""

from __future__ import annotations

from microlib.demo_site.catalogue import build_entries
from microlib.demo_site.records import (
    CONTRIBUTOR,
    LICENCE_CC,
    LICENCE_TERMS,
    ORGANISATION,
    Record,
    record_fields,
    record_html,
)
from microlib.demo_site.scale_bar import BarSpec, add_frame, encode_jpeg, render_scale_bar
from microlib.demo_site.site import EMPTY_RECORDS, build_site, render_entry
from microlib.demo_site.structures import (
    gaussian_random_field,
    image_phases,
    threshold_field,
    to_uint8,
    voronoi_grains,
)

__all__ = [
    "CONTRIBUTOR",
    "EMPTY_RECORDS",
    "LICENCE_CC",
    "LICENCE_TERMS",
    "ORGANISATION",
    "BarSpec",
    "Record",
    "add_frame",
    "build_entries",
    "build_site",
    "encode_jpeg",
    "gaussian_random_field",
    "image_phases",
    "record_fields",
    "record_html",
    "render_entry",
    "render_scale_bar",
    "threshold_field",
    "to_uint8",
    "voronoi_grains",
]
