"""Files of a training run: reading the training input, the loss/quality log and the model
files in the original SliceGAN formats plus our ``_params.json`` record."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from microlib import io as mio
from microlib.errors import MicrolibError, first_line
from microlib.slicegan.networks import Generator, generator_state_for_original
from microlib.slicegan.params import (
    ModelParams,
    save_weights,
    versions,
    write_params_data,
)
from microlib.train.monitor import MONITOR_COLUMNS
from microlib.train.trainer import SliceGANTrainer

LOSS_COLUMNS = [
    "iteration",
    "critic_loss",
    "generator_loss",
    "wasserstein",
    "gp",
    "elapsed_s",
    "it_per_s",
]
LOG_COLUMNS = LOSS_COLUMNS + MONITOR_COLUMNS


# --------------------------------------------------------------------------- inputs


def read_training_input(path: str | Path) -> tuple[np.ndarray, dict, bool, float | None]:
    """(array, microlib metadata, is_volume, voxel size) of a training image or volume."""
    p = Path(path)
    if not p.is_file():
        raise MicrolibError(f"training image {p} does not exist")
    try:
        if p.suffix.lower() in (".tif", ".tiff"):
            arr = mio.read_tif(p)
            tmeta = mio.read_tif_meta(p)
            meta = tmeta.get("info") or {}
            vox = tmeta.get("voxel_size_um") or meta.get("voxel_size_um")
            arr = np.squeeze(arr)
            is_volume = arr.ndim == 3 and arr.shape[-1] not in (3, 4)
            return arr, meta, is_volume, vox
        arr = mio.read_image(p)
        meta = mio.read_png_meta(p) if p.suffix.lower() == ".png" else {}
        return arr, meta, False, meta.get("voxel_size_um")
    except MicrolibError:
        raise
    except Exception as exc:  # unreadable or truncated image
        raise MicrolibError(f"cannot read {p.name}: {first_line(exc)}") from None


# --------------------------------------------------------------------------- outputs


def csv_text(rows: list[list[float]]) -> str:
    """``train_log.csv`` content: loss columns, then the monitor columns (empty when no
    check ran at that row's iteration)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LOG_COLUMNS)
    for r in rows:
        r = list(r) + [float("nan")] * (len(LOG_COLUMNS) - len(r))
        w.writerow([int(r[0])] + ["" if math.isnan(x) else f"{x:.6g}" for x in r[1:]])
    return buf.getvalue()


def _data_type(image_type: str, nc: int) -> str:
    if image_type != "nphase":
        return image_type
    return {2: "twophase", 3: "threephase"}.get(nc, "nphase")


def write_model_files(
    out: Path,
    name: str,
    trainer: SliceGANTrainer,
    image_type: str,
    meta: dict,
    voxel_size_um: float | None,
    training: dict,
    images: list[Path],
    arrays: list[np.ndarray],
    phase_bias: dict | None = None,
    net: Generator | None = None,
    scale: int = 1,
) -> ModelParams:
    """Write ``NAME_Gen.pt`` (the generator of :meth:`SliceGANTrainer.generator_for_eval`,
    original layout; or ``net``, that generator already built), the critics and
    ``NAME_params.data``; return the finished :class:`ModelParams` for
    ``NAME_params.json`` (written last by the caller)."""
    tset, preset = trainer.tset, trainer.preset
    save_weights(
        out / f"{name}_Gen.pt",
        generator_state_for_original(net if net is not None else trainer.generator_for_eval()),
    )
    critic_files = (
        [f"{name}_Disc.pt", f"{name}_Disc_y.pt", f"{name}_Disc_z.pt"]
        if tset.anisotropic
        else [f"{name}_Disc.pt"]
    )
    for f, d in zip(critic_files, trainer.Ds, strict=True):
        save_weights(out / f, {k: v.detach().cpu().contiguous() for k, v in d.state_dict().items()})
    nc = tset.nc
    params = ModelParams(
        name=name,
        image_type=image_type,
        gk=list(preset.gk),
        gs=list(preset.gs),
        gp=list(preset.gp),
        gf=preset.gf(nc),
        dk=list(preset.dk),
        ds=list(preset.ds),
        dp=list(preset.dp),
        df=preset.df(nc),
        lz=preset.lz,
        l=preset.l,
        data_type=meta.get("data_type") or _data_type(image_type, nc),
        phase_grey_values=(meta.get("phase_grey_values") if image_type == "nphase" else None)
        or tset.grey_levels,
        voxel_size_um=voxel_size_um,
        critics=(
            {"0": critic_files[0], "1": critic_files[1], "2": critic_files[2]}
            if tset.anisotropic
            else {"all": critic_files[0]}
        ),
        training=training,
        source={
            "images": [
                {"file": p.name, "sha256": mio.sha256_file(p), "shape": list(a.shape)}
                for p, a in zip(images, arrays, strict=True)
            ],
            "meta": meta,
        },
        versions=versions(),
        finished=True,
        g_output_stage=preset.g_output_stage,
        g_hidden_stage=preset.g_hidden_stage,
        g_output_noise=preset.g_output_noise,
        phase_bias=phase_bias,
        scale=scale,
    )
    # written for the layer lists even for a resize stage; only params.json records that
    write_params_data(out / f"{name}_params.data", params.original_layers())
    return params
