"""The restartable training loop shared by single-image and family runs: :class:`RunLoop`.

Whatever the trainer (:class:`~microlib.train.trainer.SliceGANTrainer`,
:class:`~microlib.train.family.FamilyTrainer`), one run does the same things around its
``step()``: skip a finished run, resume from ``OUT/resume/state.pt`` (or from
``OUT/checkpoint.pt`` when killed between the final state and ``_params.json``), show a
progress bar, log loss rows (plus quality-check columns when a monitor is given), save
the resume state on a timer, every ``checkpoint_every`` iterations and on SIGTERM/SIGINT
(exit ``128 + signal``), apply the plateau stop rule, and finally write the artefacts in
a fixed order: final state, model files (the caller's writer), ``train_log.csv``, the
state moved to ``OUT/checkpoint.pt``, ``NAME_params.json`` last, ``OUT/resume/`` removed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from microlib import io as mio
from microlib.device import resolve_device
from microlib.errors import MicrolibError
from microlib.slicegan.params import ModelParams, load_weights, save_weights
from microlib.slicegan.presets import Preset
from microlib.train.monitor import MONITOR_COLUMNS, PlateauStop
from microlib.train.outputs import csv_text

log = logging.getLogger("microlib.train")

STATE_FILE = "state.pt"


class Trainer(Protocol):
    """What :class:`RunLoop` needs of a trainer."""

    iteration: int

    def step(self) -> None: ...

    def read_log(self) -> dict[str, float] | None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> list[str]: ...


class Stop:
    """SIGTERM/SIGINT -> finish the current iteration, save, exit 143/130."""

    def __init__(self):
        self.signum: int | None = None
        self._old: dict[int, object] = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[s] = signal.signal(s, self._handle)
            except ValueError:  # not the main thread (e.g. called from a test thread)
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)
        return False


def already_finished(out: Path, name: str, force: bool) -> bool:
    """True (after saying so on stderr) when ``out`` holds a finished run of ``name``;
    with ``force`` the resume state is removed instead and the run starts afresh."""
    if force:
        shutil.rmtree(out / "resume", ignore_errors=True)
        return False
    pjson, gen_pt = out / f"{name}_params.json", out / f"{name}_Gen.pt"
    if pjson.is_file() and gen_pt.is_file():
        with contextlib.suppress(Exception):
            done = mio.read_json(pjson)
            if done.get("finished"):
                print(
                    f"{name}: already trained ({done.get('training', {}).get('iterations_done')}"
                    f" iterations) in {out}; use --force to retrain",
                    file=sys.stderr,
                )
                return True
    return False


def setup_torch(threads: int | None, device: str, preset: Preset) -> str:
    """Apply the thread count, resolve the device (its type is returned) and refuse batch
    sizes or iteration counts below one."""
    if threads:
        torch.set_num_threads(int(threads))
    dev = resolve_device(device).type
    for v in ("batch_size", "g_batch_size", "d_batch_size", "critic_iters", "iterations"):
        if getattr(preset, v) < 1:
            raise MicrolibError(f"--{v.replace('_', '-')} must be >= 1")
    if preset.d_slices < 0:
        raise MicrolibError("--d-slices must be >= 0 (0: every fake slice)")
    return dev


class RunLoop:
    """Resume, loop, checkpoints, signals and final files of one training run.

    Parameters
    ----------
    trainer : Trainer
        Stepped one generator iteration at a time; its ``state_dict`` is the resume state.
    out : Path
        Model directory.
    name : str
        Model name (progress bar, log lines, file names).
    target : int
        Iteration cap.
    stopper : PlateauStop, optional
        Quality-check bookkeeping and stop rule of a monitored run: when given, its state
        is part of the resume state and log rows carry the monitor columns.
    """

    def __init__(
        self,
        trainer: Trainer,
        out: Path,
        name: str,
        target: int,
        stopper: PlateauStop | None = None,
    ):
        self.trainer, self.out, self.name = trainer, Path(out), name
        self.target, self.stopper = int(target), stopper
        self.resume_dir = self.out / "resume"
        self.state_path = self.resume_dir / STATE_FILE
        self.final_ckpt = self.out / "checkpoint.pt"
        self.rows: list[list[float]] = []
        self.elapsed_before = 0.0
        self.elapsed = 0.0
        self.stopped: str | None = None
        self._t0 = time.perf_counter()
        self._start_it = trainer.iteration

    def full_state(self, elapsed: float, why: str | None = None) -> dict:
        """The resume state: trainer, log rows, time so far and why the run stopped."""
        state = {
            "trainer": self.trainer.state_dict(),
            "log": self.rows,
            "elapsed_s": elapsed,
            "target": self.target,
        }
        if self.stopper is not None:
            state["stop"] = self.stopper.state_dict()
        state["stopped"] = why
        return state

    def resume(self, force: bool) -> Path | None:
        """Load the resume state if there is one; returns the file resumed from, or None.

        Raises
        ------
        MicrolibError
            ``resume/state.pt`` is unreadable or was made with other settings (a stale
            ``checkpoint.pt`` is only warned about and ignored).
        """
        name = self.name
        source = self.state_path if self.state_path.is_file() else None
        if source is None and self.final_ckpt.is_file() and not force:
            # killed between moving the final state and writing params.json: finish from it
            source = self.final_ckpt
        if source is None:
            return None
        state = load_weights(source, entry=name)
        try:
            if not isinstance(state, dict) or "trainer" not in state:
                raise MicrolibError("not a microlib training state")
            notes = self.trainer.load_state_dict(state["trainer"])
        except MicrolibError as exc:
            if source != self.final_ckpt:
                raise MicrolibError(f"{self.state_path}: {exc.reason}", entry=name) from None
            log.warning("%s: ignoring %s (%s)", name, self.final_ckpt, exc.reason)
            return None
        self.rows = [list(r) for r in state.get("log", [])]
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        if self.stopper is not None:
            self.stopper.load_state_dict(state.get("stop", {}))
        if state.get("stopped") in ("cap", "plateau"):
            self.stopped = state["stopped"]
        for n in notes:
            log.warning("%s: %s", name, n)
        log.info(
            "%s: resumed from iteration %d/%d (%s)",
            name,
            self.trainer.iteration,
            self.target,
            source,
        )
        return source

    def _check(self, monitor: Callable[[int], dict[str, float]], it: int) -> dict[str, float]:
        row = monitor(it)
        shown = ", ".join(
            f"{k} {v:.3g}" for k, v in row.items() if k != "score" and math.isfinite(v)
        )
        st = self.stopper
        row["_plateau"] = st.update(it, row["score"])
        log.info(
            "%s: it %d: %s; score %.3g (best %.3g at %d)",
            self.name,
            it,
            shown,
            row["score"],
            st.best_score,
            st.best_iteration,
        )
        return row

    def run(
        self,
        log_every: int,
        checkpoint_every: int | None = None,
        checkpoint_minutes: float = 10.0,
        monitor: Callable[[int], dict[str, float]] | None = None,
        monitor_every: int = 0,
    ) -> int | None:
        """Step to the cap (or the stop rule); None when done, ``128 + signal`` when a
        signal stopped it (the resume state is saved first).

        ``monitor(it)`` returns the quality-check columns (:data:`MONITOR_COLUMNS` and
        ``score``) every ``monitor_every`` iterations and at the cap.
        """
        trainer, name, target = self.trainer, self.name, self.target
        if monitor is not None and self.stopper is None:
            raise ValueError("a monitor needs a stopper to record its scores")
        rows = self.rows
        t0 = self._t0 = time.perf_counter()
        self._start_it = trainer.iteration
        mon_every = monitor_every if monitor is not None else 0
        ckpt_every = int(checkpoint_every or 0)
        ckpt_s = float(checkpoint_minutes or 0.0) * 60.0
        last_ckpt = time.monotonic()
        last_log_t, last_log_it = t0, trainer.iteration
        signum: int | None = None
        with (
            Stop() as stop,
            tqdm(
                total=target,
                initial=min(trainer.iteration, target),
                unit="it",
                desc=name,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0,
            ) as bar,
        ):
            while self.stopped is None and trainer.iteration < target:
                if stop.signum is not None:
                    signum = stop.signum
                    break
                trainer.step()
                bar.update(1)
                it = trainer.iteration
                mon = None
                if mon_every and (it % mon_every == 0 or it == target):
                    mon = self._check(monitor, it)
                if it % log_every == 0 or it == target or mon is not None:
                    now = time.perf_counter()
                    vals = trainer.read_log()
                    if vals is not None:
                        rate = (it - last_log_it) / max(now - last_log_t, 1e-9)
                        row = [it, vals["critic_loss"], vals["generator_loss"], vals["wasserstein"]]
                        row += [vals["gp"], self.elapsed_before + now - t0, rate]
                        if self.stopper is not None:  # a quality-monitored kind of run
                            row += [mon[k] if mon else float("nan") for k in MONITOR_COLUMNS]
                        rows.append(row)
                        post = {"wass": f"{vals['wasserstein']:.3g}", "gp": f"{vals['gp']:.3g}"}
                        if mon:
                            post["score"] = f"{mon['score']:.3g}"
                            if math.isfinite(mon["vf_err_pts"]):
                                post["vf"] = f"{mon['vf_err_pts']:.2g}"
                        bar.set_postfix(post, refresh=False)
                    last_log_t, last_log_it = now, it
                if mon is not None and mon["_plateau"]:
                    self.stopped = "plateau"
                    log.info(
                        "%s: stopping at iteration %d: score has not improved for %d checks "
                        "(best %.3g at %d)",
                        name,
                        it,
                        self.stopper.patience,
                        self.stopper.best_score,
                        self.stopper.best_iteration,
                    )
                    break
                due = (ckpt_every and it % ckpt_every == 0) or (
                    ckpt_s > 0 and time.monotonic() - last_ckpt >= ckpt_s
                )
                if due and it < target:
                    elapsed = self.elapsed_before + time.perf_counter() - t0
                    save_weights(self.state_path, self.full_state(elapsed))
                    mio.write_text(self.resume_dir / "train_log.csv", csv_text(rows))
                    last_ckpt = time.monotonic()
        self.elapsed = self.elapsed_before + time.perf_counter() - t0
        if signum is not None:
            save_weights(self.state_path, self.full_state(self.elapsed, "signal"))
            print(
                f"microlib train: {name}: stopped by {signal.Signals(signum).name} at iteration "
                f"{trainer.iteration}/{target}; state saved in {self.state_path}, rerun the same "
                "command to resume",
                file=sys.stderr,
            )
            return 128 + int(signum)
        self.stopped = self.stopped or "cap"
        return None

    def finish(self, write_model: Callable[[], ModelParams]) -> int:
        """Write the artefacts in crash-safe order; returns 0.

        ``write_model()`` writes the model files and returns the finished
        :class:`ModelParams` (built from :attr:`stopped` and :attr:`elapsed`).
        """
        save_weights(self.state_path, self.full_state(self.elapsed, self.stopped))
        params = write_model()
        mio.write_text(self.out / "train_log.csv", csv_text(self.rows))
        self.state_path.replace(self.final_ckpt)
        mio.write_json(self.out / f"{self.name}_params.json", params.to_json())
        shutil.rmtree(self.resume_dir, ignore_errors=True)
        it = self.trainer.iteration
        session = time.perf_counter() - self._t0
        log.info(
            "%s: %d iterations done (%d in this session, %.1f s, %.2f it/s, stopped: %s); wrote %s",
            self.name,
            it,
            it - self._start_it,
            session,
            (it - self._start_it) / max(session, 1e-9),
            self.stopped,
            self.out,
        )
        return 0


__all__ = ["STATE_FILE", "RunLoop", "Stop", "Trainer", "already_finished", "setup_torch"]
