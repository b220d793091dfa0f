"""Deferred imports of the torch engine, for the parts that must stay light.

The workflow builds every stage's argument parser when it starts (to reject a misspelt
config key at ``snakemake -n``), ``microlib --help`` builds one too, and listing or extracting
a downloaded dataset needs no network. Importing torch costs about 1.3 s of CPU, so the
``train`` and ``generate`` subcommands and the dataset reader reach the engine through
:func:`lazy_module`: it is imported when first used.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from microlib.errors import MicrolibError


def lazy_module(name: str) -> ModuleType:
    """Return module ``name``, executed on first attribute access.

    Parameters
    ----------
    name : str
        Absolute module name, e.g. ``"microlib.generate"``.

    Returns
    -------
    module : ModuleType
        The module already imported, or a module whose body runs when an attribute is
        first read (:class:`importlib.util.LazyLoader`). Both are the one entry in
        ``sys.modules``, so later ordinary imports share it.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise MicrolibError(f"{name}: module not found")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
