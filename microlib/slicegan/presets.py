"""Named SliceGAN configurations: every network and training hyper-parameter in one place.

``microlib``
    What MicroLib actually trained with (SliceGAN v1.1, commit 439c305): ``nz`` 16,
    generator channels 16-512-256-128-64-nc, five k4 s2 transposed convolutions padded
    [2, 2, 2, 2, 3], critic channels nc-64-128-256-512-1 (k4 s2 p[1, 1, 1, 1, 0]),
    64 px slices from a 4^3 latent, 32 real crops per axis, generator batch 32, critic
    fake batch 8 volumes (all 64 slices of each per axis), 5 critic iterations per
    generator update, Adam 1e-4 with betas (0, 0.9), gradient penalty 10 and 5000 generator
    updates (the paper reports "about 5000"; the code's 30 epochs gave 5400).
``table1``
    The SliceGAN paper's Table 1 generator (``nz`` 64, 64-512-256-128-64-nc), the rest as
    ``microlib``.
``tiny``
    A CPU-sized net: four k4 s2 transposed convolutions (16-128-64-32-nc), 32 px slices,
    16 real crops / 4 fake volumes per critic step, 8 volumes per generator update, Adam
    2e-4. Output size ``16 (lf - 2)``. Measured on one core of a shared 2-core machine:
    ~2 s per generator iteration; on slices of the real 128^3 three-phase volume, phase
    fractions within 2.7 points from 250 iterations on and 0.6 points at 600. (At 5e-4 the
    fractions swung by up to 4 points between 300 and 500 iterations.)
``demo``
    Cheaper per iteration (16-64-32-16-nc, critic 16-32-64, 2 critic iterations, small
    batches) so several entries train in the offline demo's minutes: 1200 iterations,
    about 190 s per entry with two trainings side by side on a 2-core machine. At 600
    iterations the finest real micrographs (1-4 px needles) came out anisotropic and
    latticed (``bench fidelity``, seeds 0 and 1: 784 at 1.33 / 1.23, lattice 8.0 / 6.5
    times its image's; at 1200, 1.03 / 1.03 and 2.7 / 3.9 times; over 22 real entries
    every run at most 1.20). Grey phase fractions drifted further at 1200 (319: 2.45 ->
    8.4 points). Most figures below were measured at 600. Its generator ends in a
    resize-convolution (``g_output_stage="resize_trilinear"``, below) and trains with Adam
    5e-4 (constant: a cosine decay to 5 % was no better) and a weight EMA (decay 0.99).
    Measured on the demo's images (phase-fraction error in points / surface-area error /
    3D anisotropy / checkerboard score of 3D slices vs the 2D image, one seed, 128^3): the old
    transposed-convolution stage after 300 iterations gave 4.8 / 22.9 % / 1.78 /
    0.038 vs 0.027 (two-phase 003) and 3.2 / 378 % / 2.02 / 0.182 vs 0.024 (three-phase
    008); with the resize stage and EMA, 1.1 / 4.4 % / 1.22 / 0.028 (003, 600 iterations)
    and 4.0 / 1.4 % / 1.07 / 0.025 (008, 450 iterations); grey 011 1.6 / 16.9 % / 1.17,
    colour 014 3.2 / 17.4 % / 1.31 (nearest-neighbour upsampling for both). The stage
    is now ``resize_trilinear``: the same for n-phase, trilinear upsampling for grey and
    colour too. With nearest, the colour entry's cube came out streaky (grey-gradient
    anisotropy 1.60 against the image's 1.09, mean grey 6.4 levels off); with trilinear,
    1.23 and 3.3 (grey 011, nearest then trilinear: anisotropy 1.04 and 1.12,
    autocovariance error 0.096 and 0.072; one seed each, 600 iterations, 128^3).
    Tried against the two-phase 005's surface area (16.5 % off, large straight-edged
    grains): EMA decay 0.995 gave 17.4 %, 16 real crops per axis 25.4 %, 3 critic
    iterations 20.2 %; none kept.
    The n-phase real crops take random symmetries of the square (``augment="d4"``). On the
    fidelity benchmark's 12 n-phase real images and slices (128^3, seed 0, 600 iterations,
    against the same settings without): mean vf error 1.54 -> 0.82 points, surface area
    8.1 -> 6.6 % off, 3D anisotropy 1.22 -> 1.21 (860: vf 6.9 -> 1.1 points, surface area
    31 -> 9 %; 630 anisotropy 1.31 -> 1.18, 760 1.45 -> 1.38; 784 1.30 -> 1.45). It was
    tried against diagonal streaks (the cube's orientation anisotropy over its image's):
    it lowered them on the five streakiest entries it was chosen on (003 1.58 -> 1.27, 213
    1.91 -> 1.25, 048 1.59 -> 1.08), but over all 12 they moved both ways (mean 1.26 ->
    1.23; 784 1.16 -> 1.58, 3ph-x 1.13 -> 1.45): seed noise, not a cure. Grey and colour
    crops stay as cut (``grey``): with symmetries the demo's grey 011 streaked more (1.35
    -> 2.55) and the real 319 kept its streaks (10.4). An earlier
    comparison (all fake slices per critic step) had the per-axis ratio fall on 7 of 10
    real micrographs (760 1.61 -> 1.43, 630 1.39 -> 1.33) and rise on 860, whose 33 px
    features barely fit a 32 px crop (1.20 -> 1.50), with the volume-fraction means within
    seed noise (784 at seed 0 / 1: 1.4 / 4.5 points without, 11.1 / 2.0 with).
    The fake slices keep their orientation: giving them the square's symmetries too (two
    seeds, 14 real entries) lowered 784's anisotropy (1.33 / 1.23 -> 1.26 / 1.13) but
    raised 760's (1.28 / 1.13 -> 1.31 / 1.34), the lattice (2.7x -> 6.2x the images') and
    the vf error (1.12 -> 1.67 points).
    Grey and colour images train with blurred hidden layers (``grey``: ``g_hidden_stage``
    ``"blur"``, hence every layer padded 3 and 36 px slices from a 6^3 latent): with
    SliceGAN's hidden transposed convolutions, the demo's grey and colour cubes carried a
    lattice of period 4 and 8 voxels (lattice score 9.0 and 9.2 times their images').
    Blurred hidden layers remove it: on the colour entry (600 iterations, 128^3, seed 0)
    the cube's score fell from 6.44 to 1.01 against the image's 1.15, and the slices lost
    their blocky grid. On n-phase micrographs the same blur
    was worse (``bench fidelity``, 128^3, seed 0, against the unblurred net): per-axis
    surface-area ratio 1.39 -> 4.22 on 760 (1.3 px features), 1.19 -> 2.24 on 084, 1.33
    -> 1.62 on 630, surface area 2.7 % -> 38 % off on 760; the unblurred net's lattice
    scores there were 2.3-11 times the images'. Adding output noise
    (``g_output_noise``) brought 760 back to 1.54 and kept every lattice ratio at 0.9-1.0
    over 10 two-phase micrographs, but its speckle put the surface area 189 % and 120 %
    off on the two with 6-9 px features (mean over the 10: 44 %). Giving n-phase
    generators the 36 px geometry (unblurred, every layer padded 3) hurt the demo's own
    two-phase entries in a first run (monitored vf error 4 and 14 points on 003 and 005).
    So n-phase generators keep SliceGAN's transposed convolutions and 32 px slices (a
    lattice the argmax mostly hides), grey and colour ones are blurred, and the output
    noise is an option, off.
    Grey and colour generators also train with the value-distribution term
    (``histogram_weight`` 100): after 600 iterations the blurred demo nets matched the
    images' grey levels only loosely (Wasserstein-1 between the cube's and the image's
    histograms 4.7 and 19.4 grey levels on the demo's grey 011 and colour 014, the second
    over the 13-level flag). With the term, one seed each, 128^3: 2.5 and 3.8 grey levels,
    grey-gradient anisotropy 1.47 -> 1.30 and 1.39 -> 1.32, mean grey level 1.1 -> 2.3
    and 4.8 -> 3.8, no validation flag left. n-phase generators train without it: on the
    demo's 003 / 005 / 008 it moved the vf error from 1.96 / 5.15 / 3.81 to 1.43 / 5.55 /
    3.59 points but put 005's surface area 31 % off (8.6 % without), and on the real
    micrograph 760 (1.3 px features, ``bench fidelity``) it raised the 3D anisotropy from
    1.39 to 1.58 and the lattice score from 11 to 141 times the image's.
    Critic and generator batches: the critic sees 16 of the 64 fake slices per axis
    (``d_slices``; 2 per real crop) and grey and colour generators update on 2 volumes,
    not 4. Per iteration on one core (two runs side by side, interleaved rounds) that took
    003 from 0.56 to 0.45 s (16 slices) and colour 014 from 0.81 to 0.46 s (16 slices and 2
    volumes). Fidelity in the demo (600 iterations, seed 0, 128^3), before -> after: 003
    vf 1.61 -> 2.02 points, surface area 6.8 -> 4.2 %, surface-area anisotropy 1.20 ->
    1.03; 008 0.97 -> 4.26 points, 5.5 -> 6.2 %, 1.10 -> 1.05; grey 011 Wasserstein-1 3.6
    -> 1.2 grey levels, grey-gradient anisotropy 1.18 -> 1.07; colour 014 2.5 -> 6.1, 1.65
    (flagged) -> 1.20. Two volumes per generator update were not kept for n-phase: on 003
    and 008 they did well (0.50 and 1.51 points, 2.2 and 4.5 %), on 005 they put the
    volume fraction 17 points off. 005's straight-edged grains are larger than the 32 px
    slice and its result moves with any change: surface area 16.5 % off with all 64 fake
    slices, 22 % with 16 (flagged at 19 %), 29 % with 32.
    Output noise on the grey nets restored the fine texture the blurred layers smooth away
    (grey gradient 2.8 -> 6.0 per voxel against the image's 4.8 on 011; 014 4.6 -> 6.4
    against 4.7) but overshot: 011's checkerboard score became 3.9 times the image's.
    Two additions aimed at the demo's flags (each seed-0 run, 600 iterations, 128^3 cube
    validated by ``microlib validate``). An isotropy term (``orientation_weight``,
    :mod:`microlib.train.orientation`) against diagonal streaks, which 003, 011 and 014
    carried (orientation ratio 1.58 / 1.35 / 1.44, flag at 1.2): per batch and unsmoothed
    it took 003 to 1.04 and 014 to 1.01 but bought it with a lattice (003: 1.0 -> 1.5
    times the image's); smoothed, 003 1.05 and 011 1.07, no flag, but the per-batch
    version pushed 005 (large straight-edged grains, few per batch) to ragged boundaries,
    surface area 59-71 % over its image's in three variants; the running-mean version
    kept 005 at 18.6 % (in the demo run 43 %, flagged; 003 lattice 1.43, flagged, the
    other three clean: see the README). On real micrographs (``bench fidelity``, 12
    shared entries) the term made the cubes more isotropic (mean 3D anisotropy 1.24 ->
    1.17, streak flags 6 -> 2) but their surface area further off (14.4 -> 21.4 %; n-phase
    6.2 -> 9.7 %). And phase-fraction calibration (``calibrate_phases``,
    :mod:`microlib.train.phase_bias`): the same trained nets, re-generated with offsets
    fitted on two 128^3 calibration cubes, vf error 3.14 -> 0.87 (003), 8.50 -> 3.61 (005),
    3.24 -> 1.59 points (008); a fitting costs about 5 s per entry on one core. 005's
    cube-to-cube swing stays (a 128^3 cube holds six of its grains across): one run's
    calibration volume was 1.5 points off before the offsets and its seed-0 cube 11.8
    after.
    The isotropy term now reads two scales (the 2-voxel Gaussian and the raw output) and
    tolerates a coherence of 0.05 (:mod:`microlib.train.orientation`): on the real 784
    and 760 (1-4 px needles) the smoothed scale alone let the generator put all its fine
    texture in sheets normal to one axis (3D anisotropy 1.65 and 1.31; 1.31 and 1.26 now,
    one seed each), and the tolerance keeps it from buying isotropy with ragged
    boundaries where there is little to correct (017 surface area 31 -> 3.8 % off).
    Grey entries stay weak at this budget, and no layer choice tried fixed them (real
    319, 2 px texture, and 217, grains of ~70 px, 128^3, seed 0): with blurred hidden
    layers the cube's features come out about three times too coarse (surface area,
    after a 1 px denoise of both, 72 % and 49 % off); with SliceGAN's transposed hidden
    layers 3.4 % and 2.7 %, but through a texture with a visible lattice of period 4
    voxels (lattice score 7.9 and 119 times the images') and no grain boundaries; with
    resize-convolutions (x2 trilinear, k3) as hidden layers, 69 % (319). The same
    resize hidden layers on the n-phase 760 and 784 removed their lattice (5-8 times
    the images' with transposed layers; 1.03 and 0.97) but drew features too coarse
    (surface area 68 % and 72 % under): at this budget a smooth upsampling path does
    not reach the finest features, and the transposed one reaches them with a grid.
    n-phase images whose finest phase's mean chord is longer than the 32 px crop train
    at half resolution (``train_scale="auto"``, :mod:`microlib.train.scale`): the demo's
    005 (grains of ~50 px) had come out with bumpy boundaries and islands, surface area
    20-35 % over its image's; at half resolution with the logits upsampled, 1 % over
    its image's on average over eight 128^3 cubes. No real micrograph of the benchmark
    has chords that long; on the four with the longest (17-24 px) half resolution was
    mixed (volume fraction and S2 better, surface area 2.9 -> 9.3 % off), so they stay.

Output stage (``g_output_stage``): ``"transpose"`` is SliceGAN's last transposed
convolution, kept by ``microlib``, ``table1`` and ``tiny`` so they stay faithful to MicroLib
and SliceGAN. ``"resize"`` replaces it by x2 upsampling (trilinear for n-phase, nearest
for grey and colour), a k3 convolution and a one-voxel crop, and ``"resize_trilinear"``
(the demo's) upsamples trilinearly for every output type
(:mod:`microlib.slicegan.stages`): the same ``2 n - 4`` output voxels, so the
last ``gk/gs/gp`` entry stays the k4 s2 p3 it stands in for and sizes, tiling and critic
are unchanged, without the transposed convolution's checkerboard in 3D. The stage is
recorded in ``_params.json`` only: the original ``_params.data`` cannot describe it (the
last weight is ``(nc, gf[-2], 3, 3, 3)``), so such a model cannot be loaded from
``_params.data`` alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from microlib.errors import MicrolibError

# learning-rate schedules over a run (shape in :func:`microlib.train.optim.lr_factor`)
LR_SCHEDULES = ("constant", "cosine", "linear")

# AdaIN family generator: code-vector length (the paper's) and the code MLP's width
DEFAULT_CODE_DIM = 128
DEFAULT_CODE_HIDDEN = 128

# symmetries of the real training crops (see Preset.augment)
AUGMENTATIONS = ("none", "d4")

# fields that control how long a run goes and what it watches, not the training trajectory:
# a resumed run may change them
RUN_CONTROL_FIELDS = (
    "iterations",
    "monitor_every",
    "monitor_size",
    "stop_patience",
    "stop_min_iterations",
    "calibrate_phases",
)


@dataclass(frozen=True)
class Preset:
    """All hyper-parameters of one SliceGAN training run (``nc`` comes from the image).

    Attributes
    ----------
    name : str
    nz : int
        Latent channels.
    g_hidden : tuple of int
        Generator channels between ``nz`` and ``nc`` (``gf = [nz, *g_hidden, nc]``).
    gk, gs, gp : tuple of int
        Generator kernel sizes, strides, paddings (one per transposed convolution).
    d_hidden : tuple of int
        Critic channels between ``nc`` and 1 (``df = [nc, *d_hidden, 1]``).
    dk, ds, dp : tuple of int
        Critic kernel sizes, strides, paddings.
    l : int
        Training slice edge (the generator output edge for a latent of edge ``lz``).
    lz : int
        Latent spatial edge during training (4: the paper trains the first layer to see
        kernel overlap so larger latents work at generation).
    batch_size : int
        Real crops per axis per critic step (and number of GP interpolates).
    g_batch_size : int
        Volumes per generator update.
    d_batch_size : int
        Fake volumes per critic iteration; all ``l`` slices of each go to the critic
        unless ``d_slices`` is set.
    d_slices : int
        Fake slices per axis in each critic step, drawn at random without replacement from
        the ``d_batch_size * l`` (0 = all of them, as SliceGAN). The real side of the
        critic step is ``batch_size`` crops; with all fake slices the fake side is many
        times that. The family trainer always draws as many fake slices as real crops.
    critic_iters : int
        Critic iterations per generator update.
    lr_g, lr_d : float
        Adam learning rates.
    betas : tuple of float
        Adam betas (floats: torch 2.13 rejects the int 0).
    gp_lambda : float
        Gradient-penalty weight.
    iterations : int
        Generator updates (the cap when the stop rule is on).
    ema_decay : float
        Generator weight EMA decay (0 = off). When on, the monitored and saved generator is
        the weight average, its BatchNorm statistics re-estimated for it.
    lr_schedule : {'constant', 'cosine', 'linear'}
        Learning-rate schedule over ``iterations`` for generator and critics.
    lr_min_frac : float
        Final learning rate as a fraction of the initial one (cosine, linear).
    monitor_every : int or None
        Quality check every N generator iterations (None: every 10 % of ``iterations``,
        rounded up to a multiple of the log interval; 0: off).
    monitor_size : int
        Edge of the volume generated for each check (at least the training slice edge).
    stop_patience : int
        Stop when the monitored score has not improved for this many checks (0 = off).
    stop_min_iterations : int or None
        Never stop on a plateau before this iteration (None: 25 % of ``iterations``).
    g_output_stage : {'transpose', 'resize', 'resize_trilinear'}
        Generator's last layer: SliceGAN's transposed convolution or a resize-convolution
        with the same output size (module docstring).
    g_hidden_stage : {'transpose', 'blur'}
        Generator's other layers: SliceGAN's transposed convolutions, or each followed by
        a ``[1, 2, 1]`` blur that removes the voxel-parity pattern (its padding is one
        less, so every hidden entry needs ``p >= k - s + 1``).
    g_output_noise : bool
        Per-voxel noise with learned channel weights on the resize stage's upsampled
        features: fine stochastic detail the smooth upsampling cannot make (single-entry
        generators only).
    histogram_weight : float
        Weight of a value-distribution term in the generator loss (0 = off): the 1D
        Wasserstein distance, per channel, between the generated voxels' values and the
        training images' pixel values (:mod:`microlib.train.histogram`); for n-phase
        images it pulls each phase's volume fraction to the image's. The logged generator
        loss includes it. Single-entry generators only.
    orientation_weight : float
        Weight of an isotropy term in the generator loss (0 = off): in each slicing plane,
        the squared anisotropy of the gradient structure tensor pooled over the batch's
        slices and averaged over recent batches (:mod:`microlib.train.orientation`).
        Isotropic single-entry runs only.
    calibrate_phases : bool
        n-phase only: after training, fit per-phase logit offsets on a calibration volume
        so that the argmax gives the training images' phase fractions, stored in
        ``_params.json`` and applied by every generation (:mod:`microlib.train.phase_bias`).
    train_scale : int or 'auto'
        Train on the image(s) downscaled by this factor and generate at that resolution,
        upsampling the logits (:mod:`microlib.train.scale`). ``auto``: 2 for an
        isotropic n-phase image whose finest phase's mean chord exceeds the crop,
        else 1.
    grey : dict
        Fields that replace this preset's for grey and colour images
        (:meth:`for_image_type`): a generator whose layer geometry differs by image type.
    augment : {'none', 'd4'}
        Symmetries applied to each real training crop. ``d4``: one of the square's eight
        (rotations by 90 degrees and mirror images), drawn per crop, in isotropic training
        only. One image is compared with all three slicing planes, and an image whose
        features lean one way cannot be matched by all three at once: the generator then
        compounds the lean (a 2D ratio ``r`` becomes about ``r^2`` between two axes).
        Averaging the crops over the symmetries asks for the isotropic structure that
        isotropic SliceGAN assumes.
    """

    name: str
    nz: int
    g_hidden: tuple[int, ...]
    gk: tuple[int, ...]
    gs: tuple[int, ...]
    gp: tuple[int, ...]
    d_hidden: tuple[int, ...]
    dk: tuple[int, ...]
    ds: tuple[int, ...]
    dp: tuple[int, ...]
    l: int  # noqa: E741
    lz: int = 4
    batch_size: int = 32
    g_batch_size: int = 32
    d_batch_size: int = 8
    d_slices: int = 0
    critic_iters: int = 5
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.9)
    gp_lambda: float = 10.0
    iterations: int = 5000
    ema_decay: float = 0.0
    lr_schedule: str = "constant"
    lr_min_frac: float = 0.0
    monitor_every: int | None = None
    monitor_size: int = 64
    stop_patience: int = 0
    stop_min_iterations: int | None = None
    g_output_stage: str = "transpose"
    g_hidden_stage: str = "transpose"
    g_output_noise: bool = False
    histogram_weight: float = 0.0
    orientation_weight: float = 0.0
    calibrate_phases: bool = False
    augment: str = "none"
    train_scale: int | str = 1
    grey: dict = field(default_factory=dict)
    notes: str = field(default="", compare=False)

    def for_image_type(self, image_type: str) -> Preset:
        """This preset for ``image_type``: with :attr:`grey` applied for grayscale and
        colour images (and then emptied, so applying it again changes nothing)."""
        if image_type == "nphase" or not self.grey:
            return self
        return self.replace(**dict(self.grey), grey={})

    def gf(self, nc: int) -> list[int]:
        """Generator channel list ``[nz, *g_hidden, nc]``."""
        return [self.nz, *self.g_hidden, int(nc)]

    def df(self, nc: int) -> list[int]:
        """Critic channel list ``[nc, *d_hidden, 1]``."""
        return [int(nc), *self.d_hidden, 1]

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["grey"] = {k: list(v) if isinstance(v, tuple) else v for k, v in d["grey"].items()}
        d.pop("notes", None)
        return d

    def replace(self, **overrides) -> Preset:
        """Copy with some fields changed (``None`` values are ignored)."""
        clean = {k: v for k, v in overrides.items() if v is not None}
        unknown = set(clean) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise MicrolibError(f"unknown hyper-parameter(s): {', '.join(sorted(unknown))}")
        for k in ("gk", "gs", "gp", "dk", "ds", "dp", "g_hidden", "d_hidden", "betas"):
            if k in clean:
                clean[k] = tuple(clean[k])
        return dataclasses.replace(self, **clean)

    @classmethod
    def from_dict(cls, d: dict) -> Preset:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k in names}
        if "grey" in kw:
            kw["grey"] = {k: tuple(v) if isinstance(v, list) else v for k, v in kw["grey"].items()}
        return cls(**kw)


_SG_GK = (4, 4, 4, 4, 4)
_SG_GS = (2, 2, 2, 2, 2)
_SG_GP = (2, 2, 2, 2, 3)
_SG_DK = (4, 4, 4, 4, 4)
_SG_DS = (2, 2, 2, 2, 2)
_SG_DP = (1, 1, 1, 1, 0)

PRESETS: dict[str, Preset] = {
    "microlib": Preset(
        name="microlib",
        nz=16,
        g_hidden=(512, 256, 128, 64),
        gk=_SG_GK,
        gs=_SG_GS,
        gp=_SG_GP,
        d_hidden=(64, 128, 256, 512),
        dk=_SG_DK,
        ds=_SG_DS,
        dp=_SG_DP,
        l=64,
        lz=4,
        batch_size=32,
        g_batch_size=32,
        d_batch_size=8,
        critic_iters=5,
        iterations=5000,
        notes="SliceGAN v1.1 as MicroLib trained it",
    ),
    "table1": Preset(
        name="table1",
        nz=64,
        g_hidden=(512, 256, 128, 64),
        gk=_SG_GK,
        gs=_SG_GS,
        gp=_SG_GP,
        d_hidden=(64, 128, 256, 512),
        dk=_SG_DK,
        ds=_SG_DS,
        dp=_SG_DP,
        l=64,
        lz=4,
        batch_size=32,
        g_batch_size=32,
        d_batch_size=8,
        critic_iters=5,
        iterations=5000,
        notes="SliceGAN paper Table 1",
    ),
    "tiny": Preset(
        name="tiny",
        nz=16,
        g_hidden=(128, 64, 32),
        gk=(4, 4, 4, 4),
        gs=(2, 2, 2, 2),
        gp=(2, 2, 2, 3),
        d_hidden=(32, 64, 128),
        dk=(4, 4, 4, 4),
        ds=(2, 2, 2, 2),
        dp=(1, 1, 1, 0),
        l=32,
        lz=4,
        batch_size=16,
        g_batch_size=8,
        d_batch_size=4,
        critic_iters=5,
        lr_g=2e-4,
        lr_d=2e-4,
        iterations=600,
        notes="CPU-sized: slow real-data test",
    ),
    "demo": Preset(
        name="demo",
        nz=16,
        g_hidden=(64, 32, 16),
        gk=(4, 4, 4, 4),
        gs=(2, 2, 2, 2),
        gp=(2, 2, 2, 3),
        d_hidden=(16, 32, 64),
        dk=(4, 4, 4, 4),
        ds=(2, 2, 2, 2),
        dp=(1, 1, 1, 0),
        l=32,
        lz=4,
        batch_size=8,
        g_batch_size=4,
        d_batch_size=2,
        critic_iters=2,
        d_slices=16,
        lr_g=5e-4,
        lr_d=5e-4,
        iterations=1200,
        ema_decay=0.99,
        g_output_stage="resize_trilinear",
        augment="d4",
        orientation_weight=100.0,
        calibrate_phases=True,
        train_scale="auto",
        grey={
            "g_batch_size": 2,
            "g_hidden_stage": "blur",
            "gp": (3, 3, 3, 3),
            "lz": 6,
            "l": 36,
            "histogram_weight": 100.0,
            "augment": "none",
        },
        notes="offline demo on one core",
    ),
}


# A CPU-sized family (AdaIN-conditioned) network: the demo's layer stack with a smaller
# latent and balanced member batches (3 per step). It keeps the demo's resize output stage:
# with the transposed one, 800 iterations gave diagonal streaks in every generated slice.
PRESETS["family"] = PRESETS["demo"].replace(
    name="family",
    nz=8,
    batch_size=12,
    g_batch_size=3,
    d_batch_size=3,
    ema_decay=0.0,
    iterations=600,
    augment="none",  # the family's code sweep was measured without symmetries
    orientation_weight=0.0,  # single-entry terms: the family trainer has neither
    calibrate_phases=False,
    train_scale=1,
    notes="family (AdaIN) generator on a CPU: benchmark and slow test",
)


def check_augment(preset: Preset) -> None:
    """Refuse a preset whose ``augment`` is not one of :data:`AUGMENTATIONS`."""
    if preset.augment not in AUGMENTATIONS:
        raise MicrolibError(
            f"preset {preset.name}: augment must be one of {', '.join(AUGMENTATIONS)}, "
            f"not {preset.augment!r}"
        )


def get_preset(name: str) -> Preset:
    """Return the named preset (``microlib``, ``table1``, ``tiny``, ``demo``, ``family``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise MicrolibError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})") from None
