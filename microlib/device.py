"""The one device policy for every stage that runs torch (train, generate, inpaint, validate).

- ``auto``: the first CUDA device when one is available, else the CPU.
- ``cpu``: the CPU.
- ``cuda`` / ``cuda:N``: that device; asking for CUDA where there is none is an error, not a
  silent fallback, because a cluster job that quietly trains on the CPU would run for days.
"""

from __future__ import annotations

from microlib.errors import MicrolibError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto"):
    """Resolve a device name to a :class:`torch.device` under the policy above.

    Parameters
    ----------
    name : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    torch.device

    Raises
    ------
    MicrolibError
        For an unknown name, or CUDA requested without a CUDA device.
    """
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise MicrolibError(f"unknown device {name!r} (expected auto, cpu or cuda[:N])") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MicrolibError(f"--device {name} requested but no CUDA device is available")
    if dev.type not in ("cpu", "cuda"):
        raise MicrolibError(f"unknown device {name!r} (expected auto, cpu or cuda[:N])")
    return dev
