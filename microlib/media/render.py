"""Colours, the textured-cube renderer and the animations of an entry, on the CPU.

The research code ray-traced one cube per voxel with NVIDIA OptiX. A cube seen
from outside shows only its six outer slices, so here each visible face is drawn as a
textured parallelogram: an orthographic camera, one affine warp per face
(``cv2.warpAffine``), back faces culled, painter's order, one Lambert shade per face.
A 320^3 volume needs only its faces, never the whole volume, per frame.

Conventions: volumes are ``(Z, Y, X)`` (or ``(Z, Y, X, 3)`` RGB); ``z`` is drawn as the
vertical axis with slice 0 on top, so cutting the cube "slice by slice" removes slices
from the top and the cut face shown is the slice at that depth.

All functions are pure (arrays in, arrays/bytes out); files are written by
:mod:`microlib.commands.media`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np

from microlib.datatypes import NPHASE_TYPES

# viridis anchors: ordered dark -> light like the labels (label 0 = darkest phase),
# distinct to colour-blind readers and unlike the red used to show masks
_VIRIDIS = np.array(
    [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], float
)
BACKGROUND = (255, 255, 255)
MASK_COLOUR = (230, 20, 20)


def label_colours(n_phases: int) -> np.ndarray:
    """``(n, 3)`` uint8 colours for labels ``0..n-1``, evenly spaced along viridis."""
    n = max(int(n_phases), 1)
    t = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    pos = t * (len(_VIRIDIS) - 1)
    lo = np.minimum(np.floor(pos).astype(int), len(_VIRIDIS) - 2)
    frac = (pos - lo)[:, None]
    return np.rint(_VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac).astype(np.uint8)


def colouriser(data_type: str, n_phases: int) -> Callable[[np.ndarray], np.ndarray]:
    """Return ``f(array) -> uint8 RGB (..., 3)`` for this entry's data type.

    Labels map to :func:`label_colours` (out-of-range labels are clipped to the last
    colour), grey is replicated to three channels, colour passes through.
    """
    if data_type in NPHASE_TYPES:
        lut = np.zeros((256, 3), np.uint8)
        cols = label_colours(n_phases)
        lut[: len(cols)] = cols
        lut[len(cols) :] = cols[-1]
        return lambda a: lut[np.asarray(a, dtype=np.uint8)]
    if data_type == "colour":
        return lambda a: np.asarray(a, dtype=np.uint8)
    return lambda a: np.repeat(np.asarray(a, dtype=np.uint8)[..., None], 3, axis=-1)


# --------------------------------------------------------------------------- geometry


# face name -> (texture getter on the (sub)volume, corner points (origin, +col, +row) in
# index space (x, y, z), outward normal in index space)
def _faces(z0: int, zn: int, yn: int, xn: int) -> dict[str, tuple[Callable, tuple, tuple]]:
    return {
        "top": (lambda v: v[0], ((0, 0, z0), (xn, 0, z0), (0, yn, z0)), (0, 0, -1)),
        "bottom": (lambda v: v[-1], ((0, 0, zn), (xn, 0, zn), (0, yn, zn)), (0, 0, 1)),
        "y0": (lambda v: v[:, 0, :], ((0, 0, z0), (xn, 0, z0), (0, 0, zn)), (0, -1, 0)),
        "y1": (lambda v: v[:, -1, :], ((0, yn, z0), (xn, yn, z0), (0, yn, zn)), (0, 1, 0)),
        "x0": (lambda v: v[:, :, 0], ((0, 0, z0), (0, yn, z0), (0, 0, zn)), (-1, 0, 0)),
        "x1": (lambda v: v[:, :, -1], ((xn, 0, z0), (xn, yn, z0), (xn, 0, zn)), (1, 0, 0)),
    }


def camera(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """3x3 matrix taking world vectors (x right, y back, h up) to (screen right,
    screen up, depth away from the viewer), for an orthographic camera orbiting the
    vertical axis by ``azimuth`` and looking down by ``elevation``."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    rot = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, math.sin(e), math.cos(e)], [0, math.cos(e), -math.sin(e)]])
    return tilt @ rot


def face_geometry(
    shape: Sequence[int],
    *,
    azimuth: float,
    elevation: float,
    size: int,
    z0: int = 0,
    full_shape: Sequence[int] | None = None,
    margin: float = 0.92,
) -> list[dict]:
    """Where each face of the box ``[z0, Z) x [0, Y) x [0, X)`` lands on screen.

    Parameters
    ----------
    shape : (Z, Y, X)
        Shape of the full volume (the box's footprint).
    z0 : int
        First slice still present (slicing animation); the box spans ``z0..Z``.
    full_shape : (Z, Y, X), optional
        Shape that sets the scale and centre, so a cut box stays in place.
    margin : float
        Fraction of the frame the full cube's bounding sphere may fill.

    Returns
    -------
    list of dict
        One per face, sorted far to near: ``name``, ``visible``, ``corners``
        (3x2 screen points of the texture's origin, +col and +row corners),
        ``depth``, ``normal`` (camera space), ``getter`` (texture from the sub-volume).
    """
    zn, yn, xn = (int(s) for s in shape[:3])
    fz, fy, fx = (int(s) for s in (full_shape or shape)[:3])
    scale = margin * size / math.sqrt(fx * fx + fy * fy + fz * fz)
    cam = camera(azimuth, elevation)
    centre = np.array([fx / 2, fy / 2, fz / 2])

    def to_world(p):
        q = np.asarray(p, float) - centre
        return np.array([q[0], q[1], -q[2]])  # z index grows downwards: h = -z

    out = []
    for name, (getter, pts, normal) in _faces(z0, zn, yn, xn).items():
        cam_pts = [cam @ to_world(p) for p in pts]
        n_cam = cam @ np.array([normal[0], normal[1], -normal[2]], float)
        corners = np.array([[size / 2 + scale * c[0], size / 2 - scale * c[1]] for c in cam_pts])
        far = cam_pts[1] + cam_pts[2] - cam_pts[0]
        depth = float(np.mean([c[2] for c in cam_pts] + [far[2]]))
        out.append(
            {
                "name": name,
                "visible": bool(n_cam[2] < -1e-9),
                "corners": corners,
                "depth": depth,
                "normal": n_cam,
                "getter": getter,
            }
        )
    out.sort(key=lambda f: -f["depth"])
    return out


def _shade(normal_cam: np.ndarray, ambient: float = 0.6) -> float:
    light = np.array([-0.3, 0.5, -0.8])  # from the upper left, behind the viewer
    light /= np.linalg.norm(light)
    return ambient + (1 - ambient) * max(0.0, float(normal_cam @ light))


def render_box(
    volume: np.ndarray,
    colour: Callable[[np.ndarray], np.ndarray],
    *,
    azimuth: float,
    elevation: float,
    size: int,
    z0: int = 0,
    background: tuple[int, int, int] = BACKGROUND,
    shading: bool = True,
) -> np.ndarray:
    """Render the volume (from slice ``z0`` down) as a textured, shaded cube.

    Parameters
    ----------
    volume : ndarray, (Z, Y, X) or (Z, Y, X, 3)
    colour : callable
        Maps a 2D slice to uint8 RGB (:func:`colouriser`).
    azimuth, elevation : float
        Camera angles in degrees.
    size : int
        Frame edge in pixels.
    z0 : int
        Slices ``0..z0-1`` are cut away; the face on top is slice ``z0``.

    Returns
    -------
    ndarray of uint8, (size, size, 3)
    """
    import cv2

    frame = np.empty((size, size, 3), np.uint8)
    frame[:] = background
    sub = volume[z0:]
    geo = face_geometry(volume.shape, azimuth=azimuth, elevation=elevation, size=size, z0=z0)
    for face in geo:
        if not face["visible"]:
            continue
        tex = colour(face["getter"](sub))
        p0, pu, pv = face["corners"]
        # shrink the texture to about its on-screen size first: warping a 320 px face onto
        # 100 px with bilinear sampling alone would alias
        w_on = max(int(round(np.linalg.norm(pu - p0))), 1)
        h_on = max(int(round(np.linalg.norm(pv - p0))), 1)
        th, tw = tex.shape[:2]
        if w_on < tw or h_on < th:
            tex = cv2.resize(tex, (min(w_on, tw), min(h_on, th)), interpolation=cv2.INTER_AREA)
        th, tw = tex.shape[:2]
        if shading:
            tex = np.clip(tex.astype(np.float32) * _shade(face["normal"]), 0, 255).astype(np.uint8)
        src = np.float32([[-0.5, -0.5], [tw - 0.5, -0.5], [-0.5, th - 0.5]])
        # grow the face by ~0.6 px on every side so neighbouring faces meet without a
        # background-coloured seam (the warp leaves partly covered edge pixels untouched)
        eu = (pu - p0) / max(np.linalg.norm(pu - p0), 1e-9) * 0.6
        ev = (pv - p0) / max(np.linalg.norm(pv - p0), 1e-9) * 0.6
        dst = np.float32([p0 - eu - ev, pu + eu - ev, pv - eu + ev])
        m = cv2.getAffineTransform(src, dst)
        cv2.warpAffine(
            np.ascontiguousarray(tex),
            m,
            (size, size),
            dst=frame,
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_TRANSPARENT,
        )
    return frame


def rotation_frames(
    volume: np.ndarray,
    colour: Callable,
    *,
    frames: int = 36,
    size: int = 256,
    elevation: float = 30.0,
    start: float = 35.0,
) -> list[np.ndarray]:
    """``frames`` renders of a full 360-degree turn about the vertical axis."""
    return [
        render_box(
            volume, colour, azimuth=start + 360.0 * i / frames, elevation=elevation, size=size
        )
        for i in range(frames)
    ]


def slicing_frames(
    volume: np.ndarray,
    colour: Callable,
    *,
    frames: int = 36,
    size: int = 256,
    elevation: float = 30.0,
    azimuth: float = 35.0,
) -> list[np.ndarray]:
    """The cube cut away from the top: frame i shows slices ``z_i..Z`` with slice
    ``z_i`` as the top face, ``z_i`` going from 0 to the last slice."""
    zn = volume.shape[0]
    depths = np.unique(np.rint(np.linspace(0, zn - 1, frames)).astype(int))
    return [
        render_box(volume, colour, azimuth=azimuth, elevation=elevation, size=size, z0=int(k))
        for k in depths
    ]


def encode_gif(frames: Sequence[np.ndarray], duration_ms: int = 80, colours: int = 256) -> bytes:
    """Encode RGB frames as a looping GIF with one palette shared by every frame.

    The palette is fitted to pixels sampled from every frame, so colours do not
    flicker between frames and no frame's colours are missing; no dithering (it adds
    noise that LZW cannot compress). Identical consecutive frames are merged by the
    GIF writer (their durations add up).
    """
    from PIL import Image

    if not frames:
        raise ValueError("no frames to encode")
    # about 64k sampled pixels in all, every frame contributing
    step = max(int(math.sqrt(frames[0].shape[0] * frames[0].shape[1] * len(frames) / 65536)), 1)
    sample = Image.fromarray(np.concatenate([f[::step, ::step] for f in frames], axis=1))
    palette = sample.quantize(
        colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    images = [
        Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames
    ]
    buf = io.BytesIO()
    images[0].save(
        buf,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=duration_ms,
        loop=0,
        optimize=False,
    )
    return buf.getvalue()
