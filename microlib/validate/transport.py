"""Transport through one phase: taufactor's tortuosity factor on a (sub-)volume."""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from typing import Any

import numpy as np

from microlib.validate.nphase import percolation


def tortuosity(
    labels: np.ndarray,
    phase: int,
    *,
    device: str = "cpu",
    conv_crit: float = 1e-2,
    iter_limit: int = 10000,
) -> dict[str, Any]:
    """Tortuosity factor of one phase along axis 0 with taufactor.

    A phase that does not connect the two faces normal to axis 0 has no tortuosity:
    the result then says ``percolates: False`` with ``tau``/``d_eff`` None, instead of
    the meaningless number taufactor returns for a blocked path.

    Returns
    -------
    dict
        ``percolates``, ``tau``, ``d_eff`` (effective diffusivity relative to the bulk),
        ``vf``, ``converged``, ``iterations``, ``seconds``.
    """
    # taufactor pulls in torch: imported here so the statistics load without it
    import taufactor

    ind = (np.asarray(labels) == phase).astype(np.uint8)
    out: dict[str, Any] = {
        "percolates": percolation(ind, 1)[0],
        "tau": None,
        "d_eff": None,
        "vf": float(ind.mean()),
        "converged": None,
        "iterations": None,
        "seconds": 0.0,
    }
    if not out["percolates"]:
        return out
    t0 = time.perf_counter()
    solver = taufactor.Solver(ind, device=device)
    # taufactor prints progress and convergence warnings on stdout; keep stdout clean
    with contextlib.redirect_stdout(io.StringIO()) as buf, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tau = solver.solve(iter_limit=iter_limit, verbose=False, conv_crit=conv_crit)
    out["tau"] = float(np.ravel(tau)[0])  # taufactor returns 1-element arrays
    out["d_eff"] = float(np.ravel(solver.D_eff)[0])
    out["converged"] = "not converged" not in buf.getvalue()
    out["iterations"] = int(getattr(solver, "iter", 0))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out
