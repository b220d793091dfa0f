"""SliceGAN training: WGAN-GP on 2D slices of a 3D generator (Kench & Cooper 2021).

:class:`SliceGANTrainer` runs Algorithm 1 (isotropic) / S1 (anisotropic): per generator
iteration, ``critic_iters`` critic iterations (one fake batch, every slice along each
axis, real crops sampled on the device, gradient penalty against fake slices drawn at
random from all of them) and one generator update through every critic.

Axis convention: a generated volume is ``(Z, Y, X)`` = tensor dims ``(2, 3, 4)``. Training
image ``i`` of an anisotropic run is compared with slices normal to axis ``i``: image 0 is
the Z section (rows Y, columns X), image 1 the Y section (rows Z, columns X), image 2 the
X section (rows Z, columns Y).
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import torch

from microlib.errors import MicrolibError
from microlib.slicegan.networks import (
    Critic,
    Generator,
    critic_output_size,
    cuda_backend_flags,
    generator_output_size,
)
from microlib.slicegan.plan import noise_grid
from microlib.slicegan.presets import Preset, check_augment
from microlib.train.data import TrainingSet
from microlib.train.histogram import pixel_rows, quantile_loss, quantile_targets
from microlib.train.optim import (
    GeneratorEMA,
    Optimisations,
    apply_lr_schedule,
    count_step_flops,
    diff_keys,
    keep_impl_flags,
    lr_factor,
    module_state_cpu,
    opt_state_cpu,
    restore_rng,
    run_defining_preset,
    snapshot,
)
from microlib.train.orientation import orientation_loss

TRAIN_STATE_FORMAT = "microlib-slicegan-train/1"
# latent batches re-estimating the averaged generator's BatchNorm statistics (2: vf 10 pts off)
EMA_CALIBRATION_BATCHES = 16
EMA_CALIBRATION_SEED = 20211


def slices_along(volumes: torch.Tensor, axis: int) -> torch.Tensor:
    """All 2D slices normal to spatial ``axis`` of ``(B, C, D0, D1, D2)`` volumes.

    Returns ``(B * D_axis, C, ...)``: the original SliceGAN permute/reshape trick
    (axis 0 gives ``(D1, D2)`` slices, axis 1 ``(D0, D2)``, axis 2 ``(D0, D1)``).
    """
    b, c = volumes.shape[:2]
    moved = volumes.movedim(2 + axis, 1)
    return moved.reshape(b * moved.shape[1], c, *moved.shape[3:])


def symmetrise_crops(x: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
    """Each square crop of ``x`` ``(B, C, l, l)`` under one of the square's 8 symmetries.

    The symmetry is drawn per crop from ``rng`` (an optional transpose, then optional flips
    of each axis: all 8 equally likely) and applied to all channels alike.
    """
    flags = torch.rand(3, x.shape[0], device=x.device, generator=rng) < 0.5
    sel = [f.view(-1, 1, 1, 1) for f in flags]
    x = torch.where(sel[0], x.transpose(2, 3), x)
    x = torch.where(sel[1], x.flip(2), x)
    return torch.where(sel[2], x.flip(3), x).contiguous()


def encode_crops(crops: torch.Tensor, image_type: str, phase_ids: torch.Tensor) -> torch.Tensor:
    """uint8 crops ``(B, l, l)`` or ``(B, l, l, 3)`` -> float network input ``(B, nc, l, l)``:
    one-hot over ``phase_ids`` for n-phase, grey or RGB scaled to ``[0, 1]``."""
    if image_type == "nphase":
        return (crops.unsqueeze(1) == phase_ids.view(1, -1, 1, 1)).float()
    if image_type == "grayscale":
        return crops.unsqueeze(1).float().div_(255.0)
    return crops.permute(0, 3, 1, 2).float().div_(255.0)


def mean_losses(acc: list[float]) -> dict[str, float] | None:
    """Mean losses from accumulated sums ``[critic, generator, wasserstein, gp, critic
    steps, generator steps]``, or None when no step ran."""
    nd, ng = acc[4], acc[5]
    if nd == 0 and ng == 0:
        return None
    return {
        "critic_loss": acc[0] / max(nd, 1),
        "generator_loss": acc[1] / max(ng, 1),
        "wasserstein": acc[2] / max(nd, 1),
        "gp": acc[3] / max(nd, 1),
    }


class SliceGANTrainer:
    """One SliceGAN training run, stepped one generator iteration at a time.

    Parameters
    ----------
    tset : TrainingSet
        Training data (see :func:`make_training_set`).
    preset : Preset
        Every hyper-parameter (see :mod:`microlib.slicegan.presets`), including the
        optional weight EMA (``ema_decay``) and learning-rate schedule (``lr_schedule``,
        ``lr_min_frac`` over ``iterations``).
    seed : int
        Seeds the network initialisation and the run's own random generator (noise,
        crops, gradient-penalty partners and weights); the generator's state is part of
        :meth:`state_dict`, so a resumed run continues the same random sequence.
    device : str or torch.device
    opts : Optimisations, optional
    d_update : {'per_axis', 'summed'}
        ``per_axis`` (the original code): each axis' critic loss is a separate Adam step
        (three steps of the same critic per critic iteration when isotropic);
        ``summed`` (the paper's Algorithm 1): one step on the sum over axes.

    Notes
    -----
    Determinism: on CPU with a fixed thread count, (N uninterrupted iterations) equals
    (k iterations, ``state_dict`` -> new trainer -> ``load_state_dict``, N - k iterations)
    parameter for parameter. On CUDA, cuDNN autotuning and atomics make runs close but
    not bit-identical.
    """

    def __init__(
        self,
        tset: TrainingSet,
        preset: Preset,
        seed: int = 0,
        device: str | torch.device = "cpu",
        opts: Optimisations | None = None,
        d_update: str = "per_axis",
    ):
        preset = preset.for_image_type(tset.image_type)
        self.tset, self.preset, self.seed = tset, preset, int(seed)
        self.device = torch.device(device)
        self.opts = opts or Optimisations()
        self.eff = self.opts.effective(self.device)
        if d_update not in ("per_axis", "summed"):
            raise MicrolibError(f"d_update must be per_axis or summed, not {d_update!r}")
        self.d_update = d_update
        p = preset
        nc = tset.nc
        if generator_output_size(p.lz, p.gk, p.gs, p.gp) != p.l:
            raise MicrolibError(
                f"preset {p.name}: generator makes "
                f"{generator_output_size(p.lz, p.gk, p.gs, p.gp)} voxels from "
                f"a latent of {p.lz}, not the slice edge l={p.l}"
            )
        if critic_output_size(p.l, p.dk, p.ds, p.dp) < 1:
            raise MicrolibError(f"preset {p.name}: critic collapses a {p.l} px slice")
        check_augment(p)
        # an anisotropic run compares each axis with its own image: orientation is data there
        self.augment = p.augment == "d4" and not tset.anisotropic
        final = "softmax" if tset.image_type == "nphase" else "tanh"
        n_critics = 3 if tset.anisotropic else 1
        # init on the CPU from the seed: the same seed gives the same start on any device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.G = Generator(
                p.gk,
                p.gs,
                p.gp,
                p.gf(nc),
                final,
                output_stage=p.g_output_stage,
                hidden_stage=p.g_hidden_stage,
                output_noise=p.g_output_noise,
            )
            self.Ds = [Critic(p.dk, p.ds, p.dp, p.df(nc)) for _ in range(n_critics)]
        self.G.to(self.device)
        for d in self.Ds:
            d.to(self.device)
        if self.eff["channels_last"]:
            self.G.to(memory_format=torch.channels_last_3d)
            for d in self.Ds:
                d.to(memory_format=torch.channels_last)
        adam_kw: dict = {"betas": (float(p.betas[0]), float(p.betas[1]))}
        if self.eff["fused_adam"]:
            adam_kw["fused"] = True
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(p.lr_g), **adam_kw)
        self.opt_ds = [
            torch.optim.Adam(d.parameters(), lr=float(p.lr_d), **adam_kw) for d in self.Ds
        ]
        # validate the schedule now rather than at the first step
        lr_factor(p.lr_schedule, 0, p.iterations, p.lr_min_frac)
        self.ema = GeneratorEMA(self.G, p.ema_decay) if p.ema_decay else None
        self.g_forward = torch.compile(self.G) if self.eff["compile"] else self.G
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(self.seed)
        self.host_rng = np.random.default_rng(self.seed)
        self._fingerprint = tset.fingerprint()
        self._reals = [self._to_device(a) for a in tset.sources]
        self._hosts = list(tset.sources)
        self._arange_l = torch.arange(p.l, device=self.device)
        self._phase_ids = torch.arange(nc, device=self.device, dtype=torch.uint8)
        self._hist_targets = None
        if p.histogram_weight:
            colour = tset.image_type == "colour"
            pixels = [self._encode(pixel_rows(r, colour)) for r in self._reals]
            self._hist_targets = quantile_targets(pixels, p.g_batch_size * p.l**3)
        self._orient_mean: torch.Tensor | None = None  # the isotropy term's running mean
        self.iteration = 0
        self._acc = torch.zeros(4, device=self.device)
        self._acc_n = torch.zeros(2, device=self.device)  # critic steps, generator steps
        self._host_acc = [0.0, 0.0, 0.0, 0.0, 0, 0]

    # ----------------------------------------------------------------- data

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        # a private copy: images from PIL are read-only, and the source stays untouched
        return torch.from_numpy(np.array(a, order="C", copy=True)).to(self.device)

    def _source_for_axis(self, axis: int) -> tuple[int, bool]:
        """(source index, source is a volume) for slices normal to ``axis``."""
        if len(self.tset.sources) == 3:
            return axis, False
        return 0, self.tset.is_volume

    def _encode(self, crops: torch.Tensor) -> torch.Tensor:
        return encode_crops(crops, self.tset.image_type, self._phase_ids)

    def sample_real(self, axis: int, batch: int) -> torch.Tensor:
        """``batch`` random ``l x l`` crops for slices normal to ``axis``, on the device
        (each under a random symmetry of the square when ``preset.augment`` is ``d4``)."""
        if not self.eff["device_sampling"]:
            real = self._sample_real_host(axis, batch)
        else:
            real = self._sample_real_device(axis, batch)
        return symmetrise_crops(real, self.rng) if self.augment else real

    def _sample_real_device(self, axis: int, batch: int) -> torch.Tensor:
        idx, is_vol = self._source_for_axis(axis)
        src = self._reals[idx]
        edge, dev, g = self.preset.l, self.device, self.rng
        ar = self._arange_l
        if is_vol:
            vol = src.movedim(axis, 0)
            lay = torch.randint(0, vol.shape[0], (batch,), device=dev, generator=g)
            oy = torch.randint(0, vol.shape[1] - edge + 1, (batch,), device=dev, generator=g)
            ox = torch.randint(0, vol.shape[2] - edge + 1, (batch,), device=dev, generator=g)
            crops = vol[
                lay.view(-1, 1, 1),
                (oy.view(-1, 1) + ar).unsqueeze(2),
                (ox.view(-1, 1) + ar).unsqueeze(1),
            ]
        else:
            oy = torch.randint(0, src.shape[0] - edge + 1, (batch,), device=dev, generator=g)
            ox = torch.randint(0, src.shape[1] - edge + 1, (batch,), device=dev, generator=g)
            crops = src[(oy.view(-1, 1) + ar).unsqueeze(2), (ox.view(-1, 1) + ar).unsqueeze(1)]
        return self._encode(crops)

    def _sample_real_host(self, axis: int, batch: int) -> torch.Tensor:
        # baseline for the benchmark: host-side numpy crops + one-hot, copied every step
        idx, is_vol = self._source_for_axis(axis)
        src = self._hosts[idx]
        edge, rng, nc = self.preset.l, self.host_rng, self.tset.nc
        vol = np.moveaxis(src, axis, 0) if is_vol else None
        t = self.tset.image_type
        shape = (batch, nc, edge, edge)
        out = np.zeros(shape, dtype=np.float32)
        for b in range(batch):
            if is_vol:
                k = rng.integers(0, vol.shape[0])
                y = rng.integers(0, vol.shape[1] - edge + 1)
                x = rng.integers(0, vol.shape[2] - edge + 1)
                crop = vol[k, y : y + edge, x : x + edge]
            else:
                y = rng.integers(0, src.shape[0] - edge + 1)
                x = rng.integers(0, src.shape[1] - edge + 1)
                crop = src[y : y + edge, x : x + edge]
            if t == "nphase":
                for ph in range(nc):
                    out[b, ph] = crop == ph
            elif t == "grayscale":
                out[b, 0] = crop / 255.0
            else:
                out[b] = np.moveaxis(crop, -1, 0) / 255.0
        return torch.from_numpy(out).to(self.device)

    def noise(self, batch: int) -> torch.Tensor:
        lz = self.preset.lz
        z = torch.randn(batch, self.preset.nz, lz, lz, lz, device=self.device, generator=self.rng)
        if self.eff["channels_last"]:
            z = z.contiguous(memory_format=torch.channels_last_3d)
        return z

    def fake(self, batch: int) -> torch.Tensor:
        """``batch`` generated volumes; latents and output noise from the run's own RNG, so
        a resumed run draws what the uninterrupted one would."""
        z = self.noise(batch)
        if self.G.noise_weight is None:
            return self.g_forward(z)
        p = self.preset
        up = noise_grid(p.gk, p.gs, p.gp, p.lz)
        n = torch.randn(batch, 1, up, up, up, device=self.device, generator=self.rng)
        return self.g_forward(z, noise=n)

    def _autocast(self):
        if self.eff["autocast_bf16"]:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _critic_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.eff["channels_last"]:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    # ----------------------------------------------------------------- losses

    def _critic_loss(self, axis: int, fake: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p = self.preset
        D = self.Ds[axis if self.tset.anisotropic else 0]
        real = self.sample_real(axis, p.batch_size)
        fake_s = slices_along(fake, axis)
        if 0 < p.d_slices < fake_s.shape[0]:
            keep = torch.randperm(fake_s.shape[0], device=self.device, generator=self.rng)
            fake_s = fake_s[keep[: p.d_slices]]
        with self._autocast():
            out = D(self._critic_input(torch.cat([real, fake_s])))
        out = out.float().flatten(1).mean(1)
        out_real, out_fake = out[: real.shape[0]].mean(), out[real.shape[0] :].mean()
        # gradient penalty: partners drawn from all fake slices, not the first volume's
        pick = torch.randint(
            0, fake_s.shape[0], (real.shape[0],), device=self.device, generator=self.rng
        )
        alpha = torch.rand(real.shape[0], 1, 1, 1, device=self.device, generator=self.rng)
        interp = (alpha * real + (1.0 - alpha) * fake_s[pick]).requires_grad_(True)
        with self._autocast():
            d_int = D(self._critic_input(interp))
        (grad,) = torch.autograd.grad(d_int.float().sum(), interp, create_graph=True)
        gp = p.gp_lambda * ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
        loss = out_fake - out_real + gp
        return loss, out_real - out_fake, gp

    def _record(self, slot: int, *values: torch.Tensor) -> None:
        if self.eff["lazy_sync"]:
            if slot == 0:
                loss, wass, gp = values
                self._acc[0] += loss.detach()
                self._acc[2] += wass.detach()
                self._acc[3] += gp.detach()
                self._acc_n[0] += 1
            else:
                self._acc[1] += values[0].detach()
                self._acc_n[1] += 1
        else:
            # the original's per-step host synchronisation (baseline only)
            if slot == 0:
                self._host_acc[0] += values[0].item()
                self._host_acc[2] += values[1].item()
                self._host_acc[3] += values[2].item()
                self._host_acc[4] += 1
            else:
                self._host_acc[1] += values[0].item()
                self._host_acc[5] += 1

    # ----------------------------------------------------------------- steps

    def step(self) -> None:
        """One generator iteration: ``critic_iters`` critic iterations, one G update."""
        with (
            cuda_backend_flags(self.eff["tf32"], self.eff["cudnn_benchmark"])
            if self.device.type == "cuda"
            else contextlib.nullcontext()
        ):
            self.G.train()
            apply_lr_schedule(self.preset, self.iteration, self.opt_g, self.opt_ds)
            for _ in range(self.preset.critic_iters):
                self._critic_iteration()
            self._generator_update()
        self.iteration += 1

    def current_lr(self) -> tuple[float, float]:
        """(generator, critic) learning rate of the next step."""
        f = lr_factor(
            self.preset.lr_schedule, self.iteration, self.preset.iterations, self.preset.lr_min_frac
        )
        return float(self.preset.lr_g) * f, float(self.preset.lr_d) * f

    def generator_for_eval(self) -> Generator:
        """The generator to monitor and save, in eval mode: the live one, or the weight
        average (BatchNorm statistics re-estimated for it) when ``ema_decay`` is on.

        The live generator is returned in eval mode; call :meth:`train_mode` before the next
        step (:meth:`step` does it).
        """
        if self.ema is None:
            return self.G.eval()
        p = self.preset
        shape = (p.g_batch_size, p.nz, p.lz, p.lz, p.lz)
        return self.ema.calibrated(shape, EMA_CALIBRATION_BATCHES, EMA_CALIBRATION_SEED)

    def _critic_iteration(self) -> None:
        p = self.preset
        with torch.no_grad(), self._autocast():
            fake = self.fake(p.d_batch_size).float()
        axes = range(3)
        if self.d_update == "per_axis" or self.tset.anisotropic:
            for a in axes:
                k = a if self.tset.anisotropic else 0
                self.opt_ds[k].zero_grad(set_to_none=True)
                loss, wass, gp = self._critic_loss(a, fake)
                loss.backward()
                self.opt_ds[k].step()
                self._record(0, loss, wass, gp)
        else:
            self.opt_ds[0].zero_grad(set_to_none=True)
            parts = [self._critic_loss(a, fake) for a in axes]
            total = sum(x[0] for x in parts)
            total.backward()
            self.opt_ds[0].step()
            for x in parts:
                self._record(0, *x)

    def _generator_update(self) -> None:
        p = self.preset
        for d in self.Ds:
            d.requires_grad_(False)  # no critic weight gradients needed for the G step
        try:
            self.opt_g.zero_grad(set_to_none=True)
            with self._autocast():
                fake = self.fake(p.g_batch_size)
                loss = 0.0
                for a in range(3):
                    D = self.Ds[a if self.tset.anisotropic else 0]
                    loss = loss - D(self._critic_input(slices_along(fake, a))).float().mean()
                if self._hist_targets is not None:
                    hist = quantile_loss(fake, self._hist_targets)
                    loss = loss + self.preset.histogram_weight * hist
                if p.orientation_weight and not self.tset.anisotropic:
                    iso, self._orient_mean = orientation_loss(fake, self._orient_mean)
                    loss = loss + p.orientation_weight * iso
            loss.backward()
            self.opt_g.step()
            if self.ema is not None:
                self.ema.update(self.G)
        finally:
            for d in self.Ds:
                d.requires_grad_(True)
        self._record(1, loss)

    # ----------------------------------------------------------------- logging

    def read_log(self) -> dict[str, float] | None:
        """Mean losses since the last call (one host synchronisation), or None if no step.

        Keys: ``critic_loss``, ``generator_loss``, ``wasserstein``, ``gp``.
        """
        if self.eff["lazy_sync"]:
            vals = torch.cat([self._acc, self._acc_n]).tolist()
            self._acc.zero_()
            self._acc_n.zero_()
        else:
            vals = list(self._host_acc)
            self._host_acc = [0.0, 0.0, 0.0, 0.0, 0, 0]
        return mean_losses(vals)

    # ----------------------------------------------------------------- state

    def config(self) -> dict:
        """What defines the run (a resumed run must match it)."""
        return {
            "preset": run_defining_preset(self.preset),
            "image_type": self.tset.image_type,
            "nc": self.tset.nc,
            "seed": self.seed,
            "anisotropic": self.tset.anisotropic,
            "d_update": self.d_update,
            "grey_levels": self.tset.grey_levels,
            "data_sha256": self._fingerprint,
        }

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: networks, optimisers, RNGs, iteration.

        Plain containers and tensors only, so ``torch.load(weights_only=True)`` reads it.
        """
        return {
            "format": TRAIN_STATE_FORMAT,
            "iteration": self.iteration,
            "config": json.dumps(self.config(), sort_keys=True),
            "generator": module_state_cpu(self.G.state_dict()),
            "critics": [module_state_cpu(d.state_dict()) for d in self.Ds],
            "opt_g": opt_state_cpu(self.opt_g.state_dict()),
            "opt_d": [opt_state_cpu(o.state_dict()) for o in self.opt_ds],
            "rng_state": self.rng.get_state(),
            "rng_device": self.device.type,
            "host_rng": json.dumps(self.host_rng.bit_generator.state),
            "acc": torch.cat([self._acc, self._acc_n]).detach().cpu(),  # cat copies
            "host_acc": [float(x) for x in self._host_acc],
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "orient_mean": (snapshot(self._orient_mean) if self._orient_mean is not None else None),
        }

    def load_state_dict(self, state: dict) -> list[str]:
        """Restore :meth:`state_dict`; returns warnings (e.g. RNG re-seeded across devices).

        Raises
        ------
        MicrolibError
            If the state belongs to a different configuration.
        """
        if state.get("format") != TRAIN_STATE_FORMAT:
            raise MicrolibError(f"not a microlib training state (format {state.get('format')!r})")
        mine, theirs = self.config(), json.loads(state["config"])
        # a state saved before a preset field existed ran with that field's default
        theirs["preset"] = run_defining_preset(Preset.from_dict(theirs["preset"]))
        if mine != theirs:
            diff = sorted(diff_keys(mine, theirs))
            raise MicrolibError(
                "the saved training state was made with different settings "
                f"({', '.join(diff)}); rerun with the same settings or --force"
            )
        self.G.load_state_dict(state["generator"])
        for d, sd in zip(self.Ds, state["critics"], strict=True):
            d.load_state_dict(sd)
        self.opt_g.load_state_dict(keep_impl_flags(state["opt_g"], self.opt_g))
        for o, sd in zip(self.opt_ds, state["opt_d"], strict=True):
            o.load_state_dict(keep_impl_flags(sd, o))
        notes = restore_rng(self.rng, state, self.seed, self.device)
        self.host_rng.bit_generator.state = json.loads(state["host_rng"])
        acc = state["acc"].to(self.device)
        self._acc.copy_(acc[:4])
        self._acc_n.copy_(acc[4:])
        ha = state.get("host_acc", [0.0] * 6)
        self._host_acc = [ha[0], ha[1], ha[2], ha[3], int(ha[4]), int(ha[5])]
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        om = state.get("orient_mean")
        self._orient_mean = om.to(self.device) if om is not None else None
        self.iteration = int(state["iteration"])
        return notes

    # ----------------------------------------------------------------- accounting

    def flops_per_iteration(self) -> float:
        """FLOPs of one generator iteration (runs, and therefore applies, one step); see
        :func:`microlib.train.optim.count_step_flops`."""
        return count_step_flops(self.step)
