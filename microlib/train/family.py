"""Conditional SliceGAN training: one AdaIN generator for a family of isotropic micrographs.

:class:`FamilyTrainer` is the WGAN-GP loop of :class:`~microlib.train.trainer.SliceGANTrainer`
(per generator iteration ``critic_iters`` critic iterations over the three axes, then one
generator update through the critic) with two changes:

* every fake volume is generated at the code of one member (volume ``b`` at member
  ``b mod M``), every real crop comes from one member (crop ``j`` from member ``j mod M``),
  so each batch holds every member equally often;
* the single critic sees the code as an extra constant input channel; per critic step
  it sees as many fake slices as real crops, fake slice ``j`` from a volume of member
  ``j mod M``, and the gradient penalty interpolates crop ``j`` with fake slice ``j``, so
  the interpolated code channel stays that member's code.

Fake and generator batches are rounded up to a multiple of the member count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import torch

from microlib.errors import MicrolibError
from microlib.slicegan.adain import AdaINGenerator, conditional_critic, with_code_channel
from microlib.slicegan.networks import critic_output_size, generator_output_size
from microlib.slicegan.presets import Preset, check_augment
from microlib.train.data import TrainingSet
from microlib.train.optim import (
    GeneratorEMA,
    Optimisations,
    apply_lr_schedule,
    diff_keys,
    lr_factor,
    module_state_cpu,
    opt_state_cpu,
    restore_rng,
    run_defining_preset,
)
from microlib.train.trainer import encode_crops, mean_losses, slices_along, symmetrise_crops

FAMILY_STATE_FORMAT = "microlib-slicegan-family-train/1"


def rounded_batch(n: int, members: int) -> int:
    """``n`` rounded up to a positive multiple of ``members`` (each member equally often)."""
    return max(1, -(-int(n) // members)) * members


class FamilyTrainer:
    """One conditional training run, stepped one generator iteration at a time.

    Parameters
    ----------
    members : sequence of TrainingSet
        One isotropic 2D training set per family member, all of one image type and
        channel count.
    codes : sequence of float
        The code (``alpha``) of each member, same order.
    preset : Preset
        Hyper-parameters (``ema_decay``, ``lr_schedule`` apply as in the engine).
    code_dim, code_hidden : int
        Code length and code-MLP width of the :class:`AdaINGenerator`.
    seed : int
    device : str or torch.device

    Notes
    -----
    Deterministic on CPU at a fixed thread count: ``state_dict`` -> new trainer ->
    ``load_state_dict`` continues parameter for parameter.
    """

    def __init__(
        self,
        members: Sequence[TrainingSet],
        codes: Sequence[float],
        preset: Preset,
        code_dim: int,
        code_hidden: int,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ):
        members = list(members)
        if len(members) < 2 or len(members) != len(codes):
            raise MicrolibError(
                f"a family needs two or more members, one code each ({len(members)} images, "
                f"{len(codes)} codes)"
            )
        if len({(m.image_type, m.nc) for m in members}) != 1:
            raise MicrolibError("family members differ in image type or number of phases")
        if any(m.anisotropic or m.is_volume or len(m.sources) != 1 for m in members):
            raise MicrolibError("family members must be single isotropic 2D images")
        p = preset.for_image_type(members[0].image_type)
        if generator_output_size(p.lz, p.gk, p.gs, p.gp) != p.l:
            raise MicrolibError(f"preset {p.name}: generator output does not match l={p.l}")
        if critic_output_size(p.l, p.dk, p.ds, p.dp) < 1:
            raise MicrolibError(f"preset {p.name}: critic collapses a {p.l} px slice")
        check_augment(p)
        # output noise and the histogram term are a single-entry generator's: a family run
        # trains without them
        preset = p = p.replace(g_output_noise=False, histogram_weight=0.0, orientation_weight=0.0)
        self.members, self.preset, self.seed = members, preset, int(seed)
        self.codes = [float(c) for c in codes]
        self.code_dim, self.code_hidden = int(code_dim), int(code_hidden)
        self.device = torch.device(device)
        self.image_type, self.nc = members[0].image_type, members[0].nc
        m = len(members)
        self.d_batch = rounded_batch(p.d_batch_size, m)
        self.g_batch = rounded_batch(p.g_batch_size, m)
        self.r_batch = rounded_batch(p.batch_size, m)
        final = "softmax" if self.image_type == "nphase" else "tanh"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.G = AdaINGenerator(
                p.gk,
                p.gs,
                p.gp,
                p.gf(self.nc),
                final,
                self.code_dim,
                self.code_hidden,
                output_stage=p.g_output_stage,
                hidden_stage=p.g_hidden_stage,
            )
            self.D = conditional_critic(p.dk, p.ds, p.dp, p.df(self.nc))
        self.G.to(self.device)
        self.D.to(self.device)
        # the single-entry trainer's memory-format policy: channels-last on a CPU, where the
        # family step measured 12 % faster (one thread, interleaved repeats)
        self.channels_last = Optimisations().effective(self.device)["channels_last"]
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last_3d)
            self.D.to(memory_format=torch.channels_last)
        betas = (float(p.betas[0]), float(p.betas[1]))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(p.lr_g), betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=float(p.lr_d), betas=betas)
        lr_factor(p.lr_schedule, 0, p.iterations, p.lr_min_frac)
        self.ema = GeneratorEMA(self.G, p.ema_decay) if p.ema_decay else None
        self.rng = torch.Generator(device=self.device)
        self.rng.manual_seed(self.seed)
        self._reals = [
            torch.from_numpy(np.array(t.sources[0], order="C", copy=True)).to(self.device)
            for t in members
        ]
        self._codes = torch.tensor(self.codes, dtype=torch.float32, device=self.device)
        self._ar = torch.arange(p.l, device=self.device)
        self._phase_ids = torch.arange(self.nc, device=self.device, dtype=torch.uint8)
        self.iteration = 0
        self._acc = torch.zeros(6, device=self.device)  # d loss, g loss, wass, gp, nd, ng

    # ----------------------------------------------------------------- data

    def member_of(self, n: int) -> torch.Tensor:
        """Member index of batch items ``0..n-1`` (``b mod M``)."""
        return torch.arange(n, device=self.device) % len(self.members)

    def sample_real(self, batch: int) -> torch.Tensor:
        """``batch`` encoded crops, crop ``j`` from member ``j mod M``."""
        edge, g, ar, m = self.preset.l, self.rng, self._ar, len(self.members)
        out = []
        for k, src in enumerate(self._reals):
            n = len(range(k, batch, m))
            oy = torch.randint(0, src.shape[0] - edge + 1, (n,), device=self.device, generator=g)
            ox = torch.randint(0, src.shape[1] - edge + 1, (n,), device=self.device, generator=g)
            out.append(src[(oy.view(-1, 1) + ar).unsqueeze(2), (ox.view(-1, 1) + ar).unsqueeze(1)])
        # interleave so that crop j belongs to member j mod M
        crops = torch.stack(out, dim=1).reshape(batch, *out[0].shape[1:])
        real = encode_crops(crops, self.image_type, self._phase_ids)
        return symmetrise_crops(real, g) if self.preset.augment == "d4" else real

    def noise(self, batch: int) -> torch.Tensor:
        lz = self.preset.lz
        z = torch.randn(batch, self.preset.nz, lz, lz, lz, device=self.device, generator=self.rng)
        return z.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else z

    # ----------------------------------------------------------------- steps

    def _critic_loss(self, axis: int, fake: torch.Tensor) -> tuple[torch.Tensor, ...]:
        p, m, edge = self.preset, len(self.members), self.preset.l
        nb = self.r_batch
        real_m = self.member_of(nb)
        codes = self._codes[real_m]
        real = with_code_channel(self.sample_real(nb), codes)
        # as many fake slices as real crops, slice j from a volume of member j mod M (the
        # engine passes every slice; sampling keeps the critic step cheap on a CPU, and
        # matching members lets the gradient penalty pair j with j)
        per_member = fake.shape[0] // m
        k = torch.randint(0, per_member, (nb,), device=self.device, generator=self.rng)
        d = torch.randint(0, edge, (nb,), device=self.device, generator=self.rng)
        fake_s = with_code_channel(slices_along(fake, axis)[(real_m + m * k) * edge + d], codes)
        out = self.D(torch.cat([real, fake_s])).flatten(1).mean(1)
        out_real, out_fake = out[:nb].mean(), out[nb:].mean()
        a = torch.rand(nb, 1, 1, 1, device=self.device, generator=self.rng)
        interp = (a * real + (1.0 - a) * fake_s).requires_grad_(True)
        (grad,) = torch.autograd.grad(self.D(interp).sum(), interp, create_graph=True)
        gp = p.gp_lambda * ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()
        return out_fake - out_real + gp, out_real - out_fake, gp

    def step(self) -> None:
        """One generator iteration: ``critic_iters`` critic iterations, one G update."""
        p = self.preset
        self.G.train()
        apply_lr_schedule(p, self.iteration, self.opt_g, [self.opt_d])
        for _ in range(p.critic_iters):
            with torch.no_grad():
                fake = self.G(self.noise(self.d_batch), self._codes[self.member_of(self.d_batch)])
            for axis in range(3):  # one critic step per axis, as the original code
                self.opt_d.zero_grad(set_to_none=True)
                loss, wass, gp = self._critic_loss(axis, fake)
                loss.backward()
                self.opt_d.step()
                self._acc[[0, 2, 3, 4]] += torch.stack(
                    [loss.detach(), wass.detach(), gp.detach(), torch.ones((), device=self.device)]
                )
        self.D.requires_grad_(False)
        try:
            self.opt_g.zero_grad(set_to_none=True)
            alpha = self._codes[self.member_of(self.g_batch)]
            fake = self.G(self.noise(self.g_batch), alpha)
            a_s = alpha.repeat_interleave(p.l)
            loss = -sum(
                self.D(with_code_channel(slices_along(fake, ax), a_s)).mean() for ax in range(3)
            )
            loss.backward()
            self.opt_g.step()
            if self.ema is not None:
                self.ema.update(self.G)
        finally:
            self.D.requires_grad_(True)
        self._acc[[1, 5]] += torch.stack([loss.detach(), torch.ones((), device=self.device)])
        self.iteration += 1

    def generator_for_eval(self) -> AdaINGenerator:
        """The generator to save: the live one, or the weight average (``ema_decay``)."""
        net = self.ema.net if self.ema is not None else self.G
        return net.eval()

    def read_log(self) -> dict[str, float] | None:
        """Mean losses since the last call, or None if no step ran."""
        v = self._acc.tolist()
        self._acc.zero_()
        return mean_losses(v)

    # ----------------------------------------------------------------- state

    def fingerprint(self) -> list[str]:
        return [t.fingerprint() for t in self.members]

    def config(self) -> dict:
        """What defines the run (a resumed run must match it)."""
        p = self.preset
        return {
            "preset": run_defining_preset(p),
            "image_type": self.image_type,
            "nc": self.nc,
            "seed": self.seed,
            "codes": self.codes,
            "code_dim": self.code_dim,
            "code_hidden": self.code_hidden,
            "data_sha256": self.fingerprint(),
        }

    def state_dict(self) -> dict:
        """Networks, optimisers, RNG, iteration: plain containers (``weights_only`` safe)."""
        return {
            "format": FAMILY_STATE_FORMAT,
            "iteration": self.iteration,
            "config": json.dumps(self.config(), sort_keys=True),
            "generator": module_state_cpu(self.G.state_dict()),
            "critic": module_state_cpu(self.D.state_dict()),
            "opt_g": opt_state_cpu(self.opt_g.state_dict()),
            "opt_d": opt_state_cpu(self.opt_d.state_dict()),
            "rng_state": self.rng.get_state(),
            "rng_device": self.device.type,
            "acc": self._acc.detach().cpu(),
            "ema": self.ema.state_dict() if self.ema is not None else {},
        }

    def load_state_dict(self, state: dict) -> list[str]:
        """Restore :meth:`state_dict`; returns warnings.

        Raises
        ------
        MicrolibError
            The state belongs to another run or another configuration.
        """
        if state.get("format") != FAMILY_STATE_FORMAT:
            raise MicrolibError(f"not a family training state (format {state.get('format')!r})")
        mine, theirs = self.config(), json.loads(state["config"])
        if mine != theirs:
            raise MicrolibError(
                "the saved training state was made with different settings "
                f"({', '.join(sorted(diff_keys(mine, theirs)))}); rerun with the same "
                "settings or --force"
            )
        self.G.load_state_dict(state["generator"])
        self.D.load_state_dict(state["critic"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        notes = restore_rng(self.rng, state, self.seed, self.device)
        self._acc.copy_(state["acc"].to(self.device))
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.iteration = int(state["iteration"])
        return notes


__all__ = ["FAMILY_STATE_FORMAT", "FamilyTrainer", "rounded_batch"]
