"""MicroLib pipeline: DoITPoMS micrographs -> SliceGAN 3D microstructure library."""

__version__ = "0.1.0"

from microlib.errors import MicrolibError  # noqa: E402

__all__ = ["MicrolibError", "__version__"]
