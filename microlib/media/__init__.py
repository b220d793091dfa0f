"""Previews and animations of an entry, rendered on the CPU in a few seconds.

- :mod:`~microlib.media.render` — label colours, the textured-cube renderer, rotation
  and slicing animations, GIF encoding;
- :mod:`~microlib.media.panels` — the equal-pixel-scale preview with micrometre scale
  bars, and the in-painting panel;
- :mod:`~microlib.media.sweep` — a family generator's code sweep (montage and frames).

Everything public is re-exported here (``from microlib import media as M``); files are
written by :mod:`microlib.commands.media`.
"""

from microlib.media.panels import (
    CAPTION_BAND,
    SCALE_BAND,
    caption,
    centre_crop,
    draw_text,
    fit_height,
    format_length,
    hstack,
    inpaint_panel,
    mask_overlay,
    preview,
    round_length,
    scale_bar,
    with_scale_band,
    zoom,
    zoom_factor,
)
from microlib.media.render import (
    BACKGROUND,
    MASK_COLOUR,
    camera,
    colouriser,
    encode_gif,
    face_geometry,
    label_colours,
    render_box,
    rotation_frames,
    slicing_frames,
)
from microlib.media.sweep import mid_slice, sweep_frames, sweep_montage

__all__ = [
    "BACKGROUND",
    "CAPTION_BAND",
    "MASK_COLOUR",
    "SCALE_BAND",
    "camera",
    "caption",
    "centre_crop",
    "colouriser",
    "draw_text",
    "encode_gif",
    "face_geometry",
    "fit_height",
    "format_length",
    "hstack",
    "inpaint_panel",
    "label_colours",
    "mask_overlay",
    "mid_slice",
    "preview",
    "render_box",
    "rotation_frames",
    "round_length",
    "scale_bar",
    "slicing_frames",
    "sweep_frames",
    "sweep_montage",
    "with_scale_band",
    "zoom",
    "zoom_factor",
]
