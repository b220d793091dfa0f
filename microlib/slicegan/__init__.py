"""SliceGAN engine: networks, presets, model-file formats (original and ours) and the
latent planning / tile sizing of generation (:mod:`microlib.slicegan.plan`); the
generator's output stages (transposed or resize convolution) are in
:mod:`microlib.slicegan.stages`.

Training lives in :mod:`microlib.train`, generation in :mod:`microlib.generate`.
"""

from microlib.slicegan.adain import (
    AdaINGenerator,
    generator_at_code,
    load_conditional_generator,
)
from microlib.slicegan.networks import (
    Critic,
    FusedGenerator,
    Generator,
    GeneratorGeometry,
    check_transpose_conv_rules,
    critic_output_size,
    generator_geometry,
    generator_output_size,
    generator_state_for_original,
    load_critic_state,
    load_generator_state,
)
from microlib.slicegan.params import (
    IMAGE_TYPES,
    ModelParams,
    find_model_name,
    load_model_params,
    load_weights,
    loads_params_data,
    read_params_data,
    save_weights,
    write_params_data,
)
from microlib.slicegan.presets import PRESETS, Preset, get_preset
from microlib.slicegan.stages import OUTPUT_STAGES

__all__ = [
    "IMAGE_TYPES",
    "OUTPUT_STAGES",
    "PRESETS",
    "AdaINGenerator",
    "Critic",
    "FusedGenerator",
    "Generator",
    "GeneratorGeometry",
    "ModelParams",
    "Preset",
    "check_transpose_conv_rules",
    "critic_output_size",
    "find_model_name",
    "generator_at_code",
    "generator_geometry",
    "generator_output_size",
    "generator_state_for_original",
    "get_preset",
    "load_conditional_generator",
    "load_critic_state",
    "load_generator_state",
    "load_model_params",
    "load_weights",
    "loads_params_data",
    "read_params_data",
    "save_weights",
    "write_params_data",
]
