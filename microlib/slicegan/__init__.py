"""SliceGAN engine: networks, presets, model-file formats (original and ours) and the
latent planning / tile sizing of generation (:mod:`microlib.slicegan.plan`); the
generator's output stages (transposed or resize convolution) are in
:mod:`microlib.slicegan.stages`.

Training lives in :mod:`microlib.train`, generation in :mod:`microlib.generate`.

The names below are imported on first use (PEP 562), so that reading a preset or a
constant does not import torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "AdaINGenerator": "adain",
    "Critic": "networks",
    "FusedGenerator": "networks",
    "Generator": "networks",
    "GeneratorGeometry": "networks",
    "IMAGE_TYPES": "params",
    "ModelParams": "params",
    "OUTPUT_STAGES": "stages",
    "PRESETS": "presets",
    "Preset": "presets",
    "check_transpose_conv_rules": "networks",
    "critic_output_size": "networks",
    "find_model_name": "params",
    "generator_at_code": "adain",
    "generator_geometry": "networks",
    "generator_output_size": "networks",
    "generator_state_for_original": "networks",
    "get_preset": "presets",
    "load_conditional_generator": "adain",
    "load_critic_state": "networks",
    "load_generator_state": "networks",
    "load_model_params": "params",
    "load_weights": "params",
    "loads_params_data": "params",
    "read_params_data": "params",
    "save_weights": "params",
    "write_params_data": "params",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
