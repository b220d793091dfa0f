"""SliceGAN model files: the original ``NAME_params.data`` / ``NAME_Gen.pt`` formats and
our ``NAME_params.json`` that records what the original omits.

The original ``_params.data`` is a pickle of eight lists of ints in the order
``[dk, ds, df, dp, gk, gs, gf, gp]``. Pickles can execute code, so it is read with a
restricted unpickler that only builds lists, tuples and ints. Weight files are read with
``torch.load(weights_only=True)``.

A generator with a resize-convolution output stage (:mod:`microlib.slicegan.stages`) keeps
the original layer lists, so ``_params.data`` is still written for it, but only
``_params.json`` records the stage (``g_output_stage``, format version 2); its weights
cannot be loaded from ``_params.data`` alone. The same holds for blurred hidden layers
(``g_hidden_stage``, format version 4): their weights have the transposed convolutions'
shapes, but the padding and the blur are recorded in ``_params.json`` only.
"""

from __future__ import annotations

import io
import os
import pickle
import platform
import reprlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from microlib import __version__
from microlib.errors import MicrolibError, first_line
from microlib.io import atomic_path, read_json, write_bytes
from microlib.slicegan.networks import (
    Critic,
    Generator,
    critic_output_size,
    generator_geometry,
    generator_output_size,
)
from microlib.slicegan.stages import check_hidden_stage, check_output_noise, check_output_stage

PARAMS_JSON_FORMAT = "microlib-slicegan-params"
# version 2 adds g_output_stage, version 3 its "resize_trilinear" value, version 4
# g_hidden_stage ("blur"), version 5 g_output_noise, version 6 phase_bias; each file is
# written with the lowest version that describes it (transposed stage 1, resize 2), so
# older readers keep reading what they can, and refuse (version check) what they would
# misread
PARAMS_JSON_VERSION = 7
_STAGE_VERSION = {"transpose": 1, "resize": 2, "resize_trilinear": 3}
_HIDDEN_VERSION = {"transpose": 1, "blur": 4}
IMAGE_TYPES = ("nphase", "grayscale", "colour")
PARAMS_DATA_ORDER = ("dk", "ds", "df", "dp", "gk", "gs", "gf", "gp")
_MAX_PARAMS_BYTES = 1 << 16  # the real files are ~140 bytes; refuse anything silly


# --------------------------------------------------------------------------- params.data


class _Refused(pickle.UnpicklingError):
    pass


class _ListsOnlyUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global: no classes, no functions, hence no REDUCE."""

    def find_class(self, module: str, name: str):  # noqa: D401
        raise _Refused(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        raise _Refused("refused persistent id")


def loads_params_data(data: bytes, entry: str | None = None) -> list[list[int]]:
    """Decode an original SliceGAN ``_params.data`` pickle without executing anything.

    Parameters
    ----------
    data : bytes
        File content.
    entry : str, optional
        Name used in error messages.

    Returns
    -------
    list of list of int
        ``[dk, ds, df, dp, gk, gs, gf, gp]`` exactly as stored (not truncated).

    Raises
    ------
    MicrolibError
        If the pickle references any global (e.g. ``os.system``), is malformed, or is
        not eight lists of ints.
    """
    if len(data) > _MAX_PARAMS_BYTES:
        raise MicrolibError(
            f"params file is {len(data)} bytes; a SliceGAN params file is a few hundred",
            entry=entry,
        )
    try:
        obj = _ListsOnlyUnpickler(io.BytesIO(data)).load()
    except _Refused as exc:
        raise MicrolibError(
            f"refusing params file: {exc} (only lists of ints are allowed)", entry=entry
        ) from None
    except RecursionError:
        raise MicrolibError(
            "params file is nested too deeply to be SliceGAN parameters", entry=entry
        ) from None
    except Exception as exc:  # truncated or garbage bytes
        raise MicrolibError(
            f"params file is not a valid pickle: {first_line(exc)}", entry=entry
        ) from None
    if not isinstance(obj, list | tuple) or len(obj) != 8:
        raise MicrolibError(
            "params file must hold 8 lists [dk, ds, df, dp, gk, gs, gf, gp], "
            f"found {type(obj).__name__} of length "
            f"{len(obj) if hasattr(obj, '__len__') else '?'}",
            entry=entry,
        )
    out = []
    for name, v in zip(PARAMS_DATA_ORDER, obj, strict=True):
        if not isinstance(v, list | tuple) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in v
        ):
            raise MicrolibError(
                f"params file entry {name} is not a list of ints: {_short_repr(v)}", entry=entry
            )
        out.append([int(x) for x in v])
    return out


def _short_repr(value: Any, limit: int = 120) -> str:
    # reprlib caps the nesting depth: a plain repr of a deeply nested list recurses
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxother = 3, 8, 40
    return r.repr(value)[:limit]


def dumps_params_data(layers: list[list[int]]) -> bytes:
    """Encode ``[dk, ds, df, dp, gk, gs, gf, gp]`` as the original pickle (protocol 3, as
    the original files)."""
    if len(layers) != 8:
        raise ValueError("need the 8 lists [dk, ds, df, dp, gk, gs, gf, gp]")
    return pickle.dumps([[int(x) for x in v] for v in layers], protocol=3)


def read_params_data(path: str | os.PathLike, entry: str | None = None) -> list[list[int]]:
    """Read an original ``_params.data`` file (see :func:`loads_params_data`)."""
    with open(path, "rb") as fh:
        data = fh.read(_MAX_PARAMS_BYTES + 1)
    return loads_params_data(data, entry=entry)


def write_params_data(path: str | os.PathLike, layers: list[list[int]]) -> None:
    """Atomically write an original-format ``_params.data`` file."""
    write_bytes(path, dumps_params_data(layers))


# --------------------------------------------------------------------------- params.json


@dataclass
class ModelParams:
    """Everything needed to rebuild and use a trained SliceGAN generator.

    ``from_original`` builds one from the eight original lists; ``to_json`` /
    ``from_json`` round-trip our ``_params.json``.
    """

    name: str
    image_type: str
    gk: list[int]
    gs: list[int]
    gp: list[int]
    gf: list[int]
    dk: list[int]
    ds: list[int]
    dp: list[int]
    df: list[int]
    lz: int
    l: int  # noqa: E741
    data_type: str | None = None
    phase_grey_values: list[float] | None = None
    voxel_size_um: float | None = None
    critics: dict[str, str] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    finished: bool = False
    g_output_stage: str = "transpose"
    g_hidden_stage: str = "transpose"
    g_output_noise: bool = False
    # family (AdaIN-conditioned) generators: kind, code length, code range, members' codes
    conditional: dict[str, Any] | None = None
    # n-phase: per-phase offsets added to the logits before the argmax, with the record of
    # their fit (microlib.train.phase_bias); None: plain argmax
    phase_bias: dict[str, Any] | None = None
    # trained at 1/scale resolution: generation upsamples its logits (microlib.generate)
    scale: int = 1

    def __post_init__(self) -> None:
        check_output_stage(self.g_output_stage, self.gk[-1], self.gs[-1], self.gp[-1], self.name)
        check_hidden_stage(self.g_hidden_stage, self.gk, self.gs, self.gp, self.name)
        check_output_noise(self.g_output_noise, self.g_output_stage, self.name)
        if self.image_type not in IMAGE_TYPES:
            raise MicrolibError(
                f"image type {self.image_type!r} is not one of {', '.join(IMAGE_TYPES)}",
                entry=self.name,
            )
        if self.image_type == "grayscale" and self.nc != 1:
            raise MicrolibError(
                f"grayscale generator must have 1 output channel, has {self.nc}", entry=self.name
            )
        if self.image_type == "colour" and self.nc != 3:
            raise MicrolibError(
                f"colour generator must have 3 output channels, has {self.nc}", entry=self.name
            )
        if self.image_type == "nphase" and self.nc < 2:
            raise MicrolibError(
                f"n-phase generator needs >= 2 output channels, has {self.nc}", entry=self.name
            )
        if not isinstance(self.scale, int) or isinstance(self.scale, bool) or self.scale < 1:
            raise MicrolibError(
                f"scale must be a positive integer, not {self.scale!r}", entry=self.name
            )
        if self.phase_bias is not None:
            off = self.phase_bias.get("offsets")
            if self.image_type != "nphase" or not isinstance(off, list) or len(off) != self.nc:
                raise MicrolibError(
                    f"phase_bias needs {self.nc} offsets of an n-phase generator", entry=self.name
                )

    @property
    def phase_offsets(self) -> list[float] | None:
        """Per-phase logit offsets applied before the argmax, or None."""
        return [float(v) for v in self.phase_bias["offsets"]] if self.phase_bias else None

    @property
    def nz(self) -> int:
        return self.gf[0]

    @property
    def nc(self) -> int:
        return self.gf[-1]

    @property
    def final(self) -> str:
        """Output activation: softmax for n-phase, 0.5(tanh+1) for grayscale/colour."""
        return "softmax" if self.image_type == "nphase" else "tanh"

    def original_layers(self) -> list[list[int]]:
        """The eight lists of the original ``_params.data``."""
        return [
            list(self.dk),
            list(self.ds),
            list(self.df),
            list(self.dp),
            list(self.gk),
            list(self.gs),
            list(self.gf),
            list(self.gp),
        ]

    def output_size_formula(self) -> str:
        g = generator_geometry(self.gk, self.gs, self.gp)
        if g.trim == 0:
            return f"{g.stride}*lf"
        if g.trim % g.stride == 0:
            h = g.trim // g.stride
            return f"{g.stride}*(lf-{h})" if h > 0 else f"{g.stride}*(lf+{-h})"
        return f"{g.stride}*lf-{g.trim}" if g.trim > 0 else f"{g.stride}*lf+{-g.trim}"

    @classmethod
    def from_original(
        cls, layers: list[list[int]], name: str, image_type: str, **extra: Any
    ) -> ModelParams:
        """Build from ``[dk, ds, df, dp, gk, gs, gf, gp]``.

        Kernel/stride lists longer than the padding list (the length-6 lists of SliceGAN
        v1.1 files) are truncated to it, as the original ``zip`` did. The training latent
        edge ``lz`` and slice edge ``l`` are not stored in the original file; they are the
        smallest pair with ``G(lz) = l`` and a 1x1 critic output for an ``l x l`` slice.
        """
        dk, ds, df, dp, gk, gs, gf, gp = (list(v) for v in layers)
        n_g, n_d = len(gp), len(dp)
        gk, gs, dk, ds = gk[:n_g], gs[:n_g], dk[:n_d], ds[:n_d]
        if len(gk) != n_g or len(gs) != n_g or len(gf) != n_g + 1:
            raise MicrolibError(
                f"generator lists disagree: gk {len(gk)}, gs {len(gs)}, "
                f"gp {n_g}, gf {len(gf)} entries",
                entry=name,
            )
        if len(dk) != n_d or len(ds) != n_d or len(df) != n_d + 1:
            raise MicrolibError(
                f"critic lists disagree: dk {len(dk)}, ds {len(ds)}, "
                f"dp {n_d}, df {len(df)} entries",
                entry=name,
            )
        lz, l = infer_training_sizes(gk, gs, gp, dk, ds, dp, entry=name)  # noqa: E741
        return cls(
            name=name,
            image_type=image_type,
            gk=gk,
            gs=gs,
            gp=gp,
            gf=list(gf),
            dk=dk,
            ds=ds,
            dp=dp,
            df=list(df),
            lz=lz,
            l=l,
            **extra,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": PARAMS_JSON_FORMAT,
            "format_version": max(
                _STAGE_VERSION[self.g_output_stage],
                _HIDDEN_VERSION[self.g_hidden_stage],
                5 if self.g_output_noise else 1,
                6 if self.phase_bias else 1,
                7 if self.scale > 1 else 1,
            ),
            "name": self.name,
            "image_type": self.image_type,
            "data_type": self.data_type,
            "nc": self.nc,
            "nz": self.nz,
            "lz": self.lz,
            "l": self.l,
            "phase_grey_values": self.phase_grey_values,
            "voxel_size_um": self.voxel_size_um,
            "size_formula": self.output_size_formula(),
            "g_output_stage": self.g_output_stage,
            **(
                {"g_hidden_stage": self.g_hidden_stage}
                if self.g_hidden_stage != "transpose"
                else {}
            ),
            **({"g_output_noise": True} if self.g_output_noise else {}),
            "layers": {
                "gk": self.gk,
                "gs": self.gs,
                "gp": self.gp,
                "gf": self.gf,
                "dk": self.dk,
                "ds": self.ds,
                "dp": self.dp,
                "df": self.df,
            },
            "params_data_order": list(PARAMS_DATA_ORDER),
            "critics": self.critics,
            "training": self.training,
            "source": self.source,
            "versions": self.versions,
            **({"conditional": self.conditional} if self.conditional else {}),
            **({"phase_bias": self.phase_bias} if self.phase_bias else {}),
            **({"scale": self.scale} if self.scale > 1 else {}),
            "finished": bool(self.finished),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any], entry: str | None = None) -> ModelParams:
        fmt, ver = d.get("format", ""), d.get("format_version")
        if fmt != PARAMS_JSON_FORMAT:
            raise MicrolibError(f"not a microlib params.json (format {fmt!r})", entry=entry)
        if not isinstance(ver, int) or ver > PARAMS_JSON_VERSION:
            raise MicrolibError(
                f"params.json format_version {ver!r} is newer than this "
                f"microlib reads ({PARAMS_JSON_VERSION}); upgrade microlib",
                entry=entry,
            )
        try:
            lay = d["layers"]
            return cls(
                name=d["name"],
                image_type=d["image_type"],
                gk=list(lay["gk"]),
                gs=list(lay["gs"]),
                gp=list(lay["gp"]),
                gf=list(lay["gf"]),
                dk=list(lay["dk"]),
                ds=list(lay["ds"]),
                dp=list(lay["dp"]),
                df=list(lay["df"]),
                lz=int(d["lz"]),
                l=int(d["l"]),
                data_type=d.get("data_type"),
                phase_grey_values=d.get("phase_grey_values"),
                voxel_size_um=d.get("voxel_size_um"),
                critics=dict(d.get("critics") or {}),
                training=dict(d.get("training") or {}),
                source=dict(d.get("source") or {}),
                versions=dict(d.get("versions") or {}),
                finished=bool(d.get("finished")),
                g_output_stage=str(d.get("g_output_stage", "transpose")),
                g_hidden_stage=str(d.get("g_hidden_stage", "transpose")),
                g_output_noise=bool(d.get("g_output_noise", False)),
                conditional=dict(d["conditional"]) if d.get("conditional") else None,
                phase_bias=dict(d["phase_bias"]) if d.get("phase_bias") else None,
                scale=int(d.get("scale", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MicrolibError(
                f"params.json is incomplete: {first_line(exc)}", entry=entry
            ) from None

    def build_generator(self, check_rules: bool = True) -> Generator:
        return Generator(
            self.gk,
            self.gs,
            self.gp,
            self.gf,
            final=self.final,
            check_rules=check_rules,
            output_stage=self.g_output_stage,
            hidden_stage=self.g_hidden_stage,
            output_noise=self.g_output_noise,
        )

    def build_critic(self) -> Critic:
        return Critic(self.dk, self.ds, self.dp, self.df)


def infer_training_sizes(
    gk: list[int],
    gs: list[int],
    gp: list[int],
    dk: list[int],
    ds: list[int],
    dp: list[int],
    entry: str | None = None,
) -> tuple[int, int]:
    """Smallest ``(lz, l)`` with ``G(lz) = l`` and a 1x1 critic output for ``l x l``."""
    for lz in range(1, 65):
        l = generator_output_size(lz, gk, gs, gp)  # noqa: E741
        if l >= 1 and critic_output_size(l, dk, ds, dp) == 1:
            return lz, l
    raise MicrolibError(
        "no latent size makes the generator output match the critic input", entry=entry
    )


def versions() -> dict[str, str]:
    """Versions worth recording next to a model."""
    import numpy
    import torch

    return {
        "microlib": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": sys.platform,
    }


# --------------------------------------------------------------------------- model dirs


def find_model_name(model_dir: str | os.PathLike, name: str | None = None) -> str:
    """Name ``NAME`` of the model in ``model_dir`` (files ``NAME_params.json|data``)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise MicrolibError(f"model directory {d} does not exist")
    if name:
        return name
    names = sorted(
        {p.name[: -len(suf)] for suf in ("_params.json", "_params.data") for p in d.glob("*" + suf)}
    )
    if not names:
        raise MicrolibError(f"no NAME_params.json or NAME_params.data in {d}")
    if len(names) > 1:
        raise MicrolibError(f"several models in {d} ({', '.join(names)}); pass the name")
    return names[0]


def load_model_params(
    model_dir: str | os.PathLike, name: str | None = None, image_type: str | None = None
) -> ModelParams:
    """Read a model's parameters: ``NAME_params.json`` when present, else the original
    ``NAME_params.data`` (then ``image_type`` must be given; ``nc = gf[-1]``).

    An explicit ``image_type`` that contradicts params.json is an error.
    """
    d = Path(model_dir)
    name = find_model_name(d, name)
    pj, pd = d / f"{name}_params.json", d / f"{name}_params.data"
    if pj.is_file():
        params = ModelParams.from_json(read_json(pj), entry=name)
        if image_type and image_type != params.image_type:
            raise MicrolibError(
                f"image type {image_type!r} contradicts params.json ({params.image_type!r})",
                entry=name,
            )
        if pd.is_file():
            orig = read_params_data(pd, entry=name)
            if (
                ModelParams.from_original(orig, name, params.image_type).original_layers()
                != params.original_layers()
            ):
                raise MicrolibError(
                    f"{pd.name} and {pj.name} describe different networks", entry=name
                )
        return params
    if not pd.is_file():
        raise MicrolibError(f"neither {pj.name} nor {pd.name} in {d}", entry=name)
    layers = read_params_data(pd, entry=name)
    if not image_type:
        nc = layers[6][-1] if layers[6] else 0
        hint = "grayscale" if nc == 1 else "nphase" if nc != 3 else "nphase or colour"
        raise MicrolibError(
            f"{pd.name} does not record the image type and there is no "
            f"{pj.name}; state it (image type {hint} for {nc} output channels)",
            entry=name,
        )
    return ModelParams.from_original(layers, name, image_type)


def save_weights(path: str | os.PathLike, state: dict) -> None:
    """Atomically ``torch.save`` a state dict (or a checkpoint of plain containers)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_weights(path: str | os.PathLike, entry: str | None = None) -> dict:
    """``torch.load(path, weights_only=True)`` onto the CPU, errors as :class:`MicrolibError`."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise MicrolibError(f"{p} does not exist", entry=entry)
    if p.stat().st_size == 0:
        raise MicrolibError(f"{p.name}: empty or truncated checkpoint", entry=entry)
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise MicrolibError(
            f"refusing {p.name}: not a plain weights file ({first_line(exc)})", entry=entry
        ) from None
    except EOFError:
        raise MicrolibError(f"{p.name}: empty or truncated checkpoint", entry=entry) from None
    except (RuntimeError, OSError, ValueError) as exc:
        if "PytorchStreamReader" in str(exc):  # the zip container was cut short
            raise MicrolibError(f"{p.name}: empty or truncated checkpoint", entry=entry) from None
        raise MicrolibError(f"cannot read {p.name}: {first_line(exc)}", entry=entry) from None
