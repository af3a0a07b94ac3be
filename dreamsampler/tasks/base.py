"""DreamSampler as a LightningModule (Alg. 2): psi are the only parameters, the schedule is the dataloader.

The step contract. Each batch of the schedule is one reverse step t → t⁻ for all B samples of the task at once:
  1. ``z_t = renoise(E(g(psi)), eps_tilde, level_t)``                               eq. (12)
  2. the task's ``targets(z_t, step)``: the proximal target ẑ₀ (Tweedie's, eq. (14), or one it builds directly)
     and the renoising noise, from the frozen backbone (no graph, unless ``needs_backbone_grad``)
  3. ``inner_steps`` optimizer steps on ``sum_k weight_k * term_k`` — the task's named ``terms``; the default is
     the proximal term ``||E(g(psi)) - ẑ₀||^2`` of eq. (13)
  4. ``eps_tilde <- eta_noise(eps_renoise, noise(seed, "eta", step, sample))``      eq. (5)
All four happen inside ``training_step`` (manual optimization), so a checkpoint written at a step boundary
always holds a consistent (psi, eps_tilde, optimizer, scheduler) state. ``predict`` runs the very same
``dream_step`` over the same schedule for every batch of dataset samples. Levels are ``(a, s)`` of
``z = a z0 + s eps``, so the step is the same for variance-preserving and rectified-flow backbones.

What a task implements, for a batch of samples:
  ``load_batch(items)``      config samples or dataset items → its validated batch (``.names``), no model needed
  ``build_generator(batch)`` the module holding psi (register the batch's tensors as buffers here)
  ``start(batch)``           set psi's start value and return eps_tilde's (``inversion_start`` / ``noise_start``)
  ``targets(z_t, step)``     the ẑ₀ target and the renoising noise, from ``self.backbone``
and may override ``terms``, ``needs_backbone_grad``, ``after_step``, ``result_images`` / ``result_texts``, for
datasets ``check_item`` / ``eval_inputs``, and ``make_schedule`` / ``resolve_step`` (score distillation: i.i.d.
iterations, each drawing its own t and noise per sample; ``tasks/distill.py``). A task's ``__init__`` loads the
samples ``fit`` optimizes into ``self.fit_batch`` (None: the task is a template for ``dreamsampler predict``).
"""

from __future__ import annotations

from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from ..backbones import Backbone, BackboneOptions, DType
from ..core import Denoised, Level, Term, ddim_invert, eta_noise, renoise, squared_error, total_loss
from ..errors import DivergedError, InputError
from ..generators import LatentGenerator
from ..schedule import Pairing, ReverseSchedule, Schedule, Spacing
from ..seeding import randn_batch
from .dataset import DatasetRuns
from .targets import Targets, proximal_sgd

#: Trainer precisions that would corrupt the reverse steps (see ``setup``).
_BAD_PRECISIONS = ("16-mixed", "16", "16-true", "bf16-true", "transformer-engine", "transformer-engine-float16")


def _as_list(x: Any) -> list:
    return [] if x is None else list(x) if isinstance(x, (list, tuple)) else [x]


class DreamSamplerTask(DatasetRuns, L.LightningModule):
    """Base task: a generator ``g`` (an ``nn.Module`` holding psi for B samples) driven through a reverse schedule.

    Args:
        backbone: frozen model source: ``"shapes"`` (shipped prior), a preset (``tiny``, ``tiny-v``, ``tiny-xl``,
            ``tiny-sd3``, ``tiny-flux``, ``sd15-random``, ``sdxl-random``, ``sd3-random``), a hub id, a diffusers
            folder or a ``.safetensors`` file; SD 1.x/2.x, SDXL, SD 3/3.5 and Flux are recognised.
        backbone_dtype: dtype of the frozen networks (``fp32``, ``fp16``, ``bf16``).
        backbone_options: VAE dtype, ``torch.compile``, channels-last, Flux guidance, SD3's T5 (``BackboneOptions``).
        nfe: number of reverse steps (= denoiser evaluations per prompt batch).
        spacing: DDIM timestep spacing of variance-preserving models (default: the model's scheduler config).
        t_range: optional ``[t_min, t_max]`` (the model's timesteps) kept from the schedule.
        pairing: ``diffusers`` (default) or ``official``: pair UNet timestep t with alpha_bar[t-1] as the official
            DreamSampler code does (variance-preserving models; see ``dreamsampler.schedule.vp_schedule``).
        eta: stochasticity of eq. (5); 0 is deterministic (Alg. 3).
        seed: run seed; noise comes from generators keyed by ``(seed, purpose, step, sample name)``.
        inner_steps: optimizer steps per reverse step (the state advance follows the last one).
        optimizer: builds the optimizer from the generator's parameter groups (default: SGD lr 0.5, the exact
            proximal minimiser for a latent generator); e.g. ``{class_path: torch.optim.Adam, init_args: {...}}``.
        lr_scheduler: optional LR scheduler, stepped once per reverse step.
        trajectory_every: store ẑ₀ every this many steps for the TensorBoard callback (0: never).
    """

    #: stop with ``DivergedError`` when the objective is NaN/inf, before the step can corrupt psi (one host sync
    #: per optimizer step, so off for the latent editor, whose closed-form step cannot diverge)
    stop_on_nonfinite = False
    #: what ``fit`` needs in the config (named in the error when it is missing)
    fit_needs = "samples"
    #: appended to a schedule error (e.g. where a default ``t_range`` came from)
    t_range_note = ""

    def __init__(self, backbone: str = "shapes", backbone_dtype: DType = "fp32",
                 backbone_options: BackboneOptions | None = None, nfe: int = 50, spacing: Spacing | None = None,
                 t_range: tuple[float, float] | None = None, pairing: Pairing = "diffusers", eta: float = 0.0,
                 seed: int = 0, inner_steps: int = 1, optimizer: OptimizerCallable = proximal_sgd,
                 lr_scheduler: LRSchedulerCallable | None = None, trajectory_every: int = 10) -> None:
        super().__init__()
        for name, value in (("nfe", nfe), ("inner_steps", inner_steps)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InputError(f"{name} must be a positive integer, got {value!r}")
        Backbone.check_source(backbone, backbone_dtype)
        if eta < 0:
            raise InputError(f"eta must be >= 0, got {eta}")
        if pairing not in ("diffusers", "official"):
            raise InputError(f"pairing must be 'diffusers' or 'official', got {pairing!r}")
        self.automatic_optimization = False        # the step contract runs its own inner optimizer steps
        self.backbone_source, self.backbone_dtype = backbone, backbone_dtype
        self.backbone_options = backbone_options or BackboneOptions()
        self.nfe, self.spacing, self.t_range, self.pairing = nfe, spacing, t_range, pairing
        self.eta, self.seed = eta, seed
        self.inner_steps, self.optimizer, self.lr_scheduler = inner_steps, optimizer, lr_scheduler
        self.trajectory_every = trajectory_every
        self.backbone: Backbone | None = None       # plain attribute: never a registered submodule
        self.generator: nn.Module | None = None     # g(psi)
        self.fit_batch: Any = None                  # the samples `fit` optimizes (a task's __init__ loads them)
        self.sample_names: list[str] = []           # the current batch's samples (noise keys, output names)
        self.schedule: Schedule | None = None
        self.register_buffer("initialized", torch.tensor(False))
        self.last_z0_hat: Tensor | None = None

    # ------------------------------------------------------------------ what a task implements
    def load_batch(self, items: Sequence[Any]) -> Any:
        """Config samples or dataset items (manifest lines) → this task's loaded, validated batch (with
        ``.names``); no backbone needed."""
        raise NotImplementedError

    def build_generator(self, batch: Any) -> nn.Module:
        """The generator holding psi for the batch (shapes may depend on ``self.backbone``); register any
        per-batch tensors the steps need as non-persistent buffers here, so they move with the module."""
        raise NotImplementedError

    def start(self, batch: Any) -> Tensor:
        """Set psi to its start value and return eps_tilde's (``inversion_start`` / ``noise_start``). Not called
        when a checkpoint restores the state."""
        raise NotImplementedError

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        """The frozen model's ẑ₀ target and renoising noise at ``z_t`` (B, C, h, w) for this step."""
        raise NotImplementedError

    def terms(self, g_out: Tensor, latent: Tensor, targets: Targets, step: dict) -> dict[str, Term]:
        """The named, weighted terms of eq. (13) for ``g_out = g(psi)`` and ``latent = E(g(psi))`` (None when
        ``latent_terms`` is False)."""
        return {"prox": Term(squared_error(latent, targets.z0))}

    #: whether ``terms`` reads ``latent = E(g(psi))``; False skips the encoder's backward (and its inner-step calls)
    latent_terms = True

    def make_schedule(self, size: int) -> Schedule:
        """The steps the dataloader yields for ``size × size`` images: the backbone's reverse schedule of ``nfe``
        steps (score distillation: ``nfe`` i.i.d. iterations)."""
        return self.backbone.schedule(self.nfe, size, self.spacing, tuple(self.t_range) if self.t_range else None,
                                      self.pairing)

    def resolve_step(self, step: dict, x: Tensor) -> dict:
        """The step as ``targets`` sees it, given ``x = E(g(psi))``; its ``noise`` (default: eps_tilde) makes z_t.
        Score distillation draws each sample's t and noise here (``dreamsampler.tasks.distill``)."""
        return step

    @staticmethod
    def is_last_step(step: dict) -> bool:
        """The last reverse step (it goes to ``t_prev = -1``, ``schedule.reverse_steps``): a DPS correction there
        would only move a z_t that is never used, so DPS tasks take a plain Tweedie step."""
        return float(step["t_prev"]) < 0

    def needs_backbone_grad(self, step: dict) -> bool:
        """Whether ``targets`` needs d/dz_t through the frozen nets this step (DPS); ``z_t`` then requires grad."""
        return False

    def after_step(self, step: dict) -> None:
        """Called at the end of every reverse step, after the state advance (inside the step, so checkpoints see
        its effect): e.g. re-initializing dead SVG paths."""

    def result_images(self) -> dict[str, Tensor]:
        """Named (B, 3, H, W) images in [0, 1]; the first is the main result (written as PNG at the end)."""
        return {}

    def result_texts(self) -> dict[str, list[str]]:
        """Named text files (e.g. ``final.svg``), one text per sample, written at the end next to the images."""
        return {}

    def eval_inputs(self, item: dict) -> dict[str, Any]:
        """What the metrics compare one finished dataset sample with, read from its item's files: any of
        ``source`` / ``truth`` ((1, 3, S, S) in [0, 1]), ``prompt``, ``source_prompt``, ``holes`` ([(mask (S, S)
        bool, prompt)]). See ``dreamsampler.evaluate``."""
        return {"prompt": item.get("prompt")}

    # ------------------------------------------------------------------ helpers for tasks
    def latent_generator(self, batch_size: int, size: int) -> LatentGenerator:
        """psi = B latents of ``size × size`` images (a clear error when the size does not fit the backbone)."""
        return LatentGenerator((batch_size, *self.backbone.latent_shape(size)))

    def inversion_start(self, z0: Tensor, null_prompt: str | list[str]) -> Tensor:
        """Alg. 3's start: psi, eps_tilde = (z0', eps) of the last step of the unconditional inversion of ``z0``
        (or conditional on one prompt per sample, a list), whose renoise is exactly z_T. Sets psi, returns
        eps_tilde."""
        bb = self.backbone
        null = (bb.encode_text(list(null_prompt)) if isinstance(null_prompt, list)
                else bb.encode_text([null_prompt]).repeat(z0.shape[0]))
        psi0, eps0 = ddim_invert(lambda z, t, level: bb.denoise(z, t, null, level), z0, self.schedule.steps,
                                 self.schedule.inversion_start, return_pair=True)
        self.generator.set_latent(psi0)
        return eps0

    def noise_start(self) -> Tensor:
        """Alg. 2 line 1: eps_tilde ~ N(0, I) keyed ``(seed, "start", -1, sample)``; psi keeps its own start."""
        return randn_batch(tuple(self.eps_tilde.shape[1:]), self.seed, "start", -1, self.sample_names,
                           device=self.device)

    def denoise(self, z_t: Tensor, step: dict, cond: Any, grad: bool = False) -> Denoised:
        """The backbone's (eps, z0) at this step: timestep ``step["t"]`` read at the step's level (per-sample t and
        levels of B samples repeat over the rows of ``z_t``, e.g. [null × B, prompts × B])."""
        t, level = step["t"], step["level_t"]
        if isinstance(t, Tensor) and t.dim() > 0 and len(t) != len(z_t):
            reps = len(z_t) // len(t)
            t, level = t.repeat(reps), Level(level.a.repeat(reps, 1, 1, 1), level.s.repeat(reps, 1, 1, 1))
        return self.backbone.denoise(z_t, t, cond, level, grad=grad)

    def denoise_prompts(self, z_t: Tensor, step: dict, null_prompt: str, prompts: list[str],
                        owner: Tensor | None = None, grad: bool = False) -> tuple[Denoised, Denoised]:
        """One denoiser call on [null × B, prompts]: the unconditional (B rows) and the conditional estimates, prompt
        k on sample ``owner[k]`` (default: prompt b on sample b); ``grad`` keeps the graph to ``z_t``."""
        cond = self.backbone.encode_text([null_prompt] * z_t.shape[0] + list(prompts))
        z_c = z_t if owner is None else z_t[owner]
        out = self.denoise(torch.cat([z_t, z_c]), step, cond, grad=grad)
        return out[:z_t.shape[0]], out[z_t.shape[0]:]

    # ------------------------------------------------------------------ the frozen backbone
    def load_backbone(self, device: torch.device | None = None) -> Backbone:
        """The frozen backbone, loaded once, on ``device`` (default: where the task's tensors are)."""
        device = device or self.device
        if self.backbone is None:
            self.backbone = Backbone.load(self.backbone_source, dtype=self.backbone_dtype, device=device,
                                          options=self.backbone_options)
        elif self.backbone.device != device:
            self.backbone.to(device)
        return self.backbone

    # ------------------------------------------------------------------ Lightning hooks (the base's business)
    def setup(self, stage: str) -> None:
        """Check the trainer settings, load the backbone on the strategy's device (``setup`` runs before the
        module is moved there) and, for fit/validate, build the generator of the configured samples."""
        trainer = self.trainer
        precision = str(trainer.precision)
        if precision in _BAD_PRECISIONS:
            raise InputError(f"trainer.precision={precision!r} is not supported for psi: 16-mixed's GradScaler "
                             "silently skips reverse steps on overflow and *-true half precision loses the proximal "
                             "update; use 32-true or bf16-mixed (the frozen nets' dtype is `backbone_dtype`)")
        if stage == "fit":
            if trainer.max_epochs != 1:
                raise InputError(f"trainer.max_epochs must be 1 (one pass over the reverse schedule), got "
                                 f"{trainer.max_epochs}: a second epoch would run the schedule again on the result")
            if trainer.world_size > 1:
                raise InputError("fit optimizes one batch of samples in one process (DDP would average the "
                                 "gradients of independent samples); for many GPUs use `dreamsampler predict` "
                                 "over a manifest")
        device = trainer.strategy.root_device
        self.load_backbone(device)
        if stage == "predict" or self.generator is not None:    # every predict step opens its own batch
            return
        if self.fit_batch is None:
            raise InputError(f"{type(self).__name__} has nothing to {stage}: give {self.fit_needs} in the config "
                             "(without them the task is a template for `dreamsampler predict` over a manifest)")
        self._open(self.fit_batch)
        self.to(device)                          # psi and the buffers build_generator registered

    def on_fit_start(self) -> None:
        """Start psi and eps_tilde, unless a checkpoint restored them (Lightning restores before this hook)."""
        if not bool(self.initialized):
            self._start()

    def _open(self, batch: Any) -> None:
        """The generator, eps_tilde's buffer and the reverse schedule for a loaded batch (not started yet)."""
        self.sample_names = list(batch.names)
        self.generator = self.build_generator(batch)
        with torch.no_grad():
            latent = self.encode_generated(self.generator())
        size = latent.shape[-1] * self.backbone.vae_scale_factor
        try:
            self.schedule = self.make_schedule(size)
        except ValueError as err:
            raise InputError(f"{err}{self.t_range_note}") from err
        self.register_buffer("eps_tilde", torch.zeros_like(latent))
        self.initialized.fill_(False)
        self._batch = batch

    def _start(self) -> None:
        with torch.no_grad():
            self.eps_tilde.copy_(self.start(self._batch))
            self.initialized.fill_(True)

    def prepare_batch(self, batch: Any) -> None:
        """Open a loaded batch on the task's device and start it: what ``predict`` does for every batch (and what a
        script that steps a task by hand calls, e.g. ``tools/bench_svg.py``)."""
        self._open(batch)
        self.to(self.device)
        self._start()

    def encode_generated(self, g_out: Tensor) -> Tensor:
        """E(g(psi)): identity for latent generators, the VAE encoder for image generators (with gradient)."""
        if getattr(self.generator, "outputs_latent", False):
            return g_out
        return self.backbone.encode(g_out * 2 - 1, grad=torch.is_grad_enabled())

    def reverse_schedule(self) -> ReverseSchedule:
        return ReverseSchedule(self.schedule)

    def train_dataloader(self) -> ReverseSchedule:
        return self.reverse_schedule()

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Schedule batches are a few scalars: keep them on the host, so reading t or a level never waits
        for the accelerator (the model's tensors use them as host scalars). Predict batches are items."""
        return batch

    # ------------------------------------------------------------------ the step (fit and predict alike)
    def dream_step(self, step: dict, optimizers: list, schedulers: list) -> dict[str, Tensor]:
        """One reverse step for every sample: steps 1-4 of the module docstring. Returns the step's logs."""
        g_out = self.generator()
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.latent_terms):
            latent = self.encode_generated(g_out)
        step = self.resolve_step(step, latent.detach())
        z_t = renoise(latent.detach(), step.get("noise", self.eps_tilde), step["level_t"])
        grad = self.needs_backbone_grad(step)
        with torch.set_grad_enabled(grad):
            targets = self.targets(z_t.requires_grad_(grad), step)
        targets = targets.detach()
        params = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        for k in range(self.inner_steps):
            if k:
                g_out = self.generator()
                latent = self.encode_generated(g_out) if self.latent_terms else None
            for p in params:                     # = zero_grad(set_to_none=True), without its per-call wrapper
                p.grad = None
            terms = self.terms(g_out, latent, targets, step)
            loss = total_loss(terms)
            if self.stop_on_nonfinite and not bool(torch.isfinite(loss)):
                raise DivergedError(f"the objective became NaN or infinite at reverse step {int(step['step'])} "
                                    f"(t={float(step['t']):g}, inner step {k}): lower the learning rates or the "
                                    "term weights; the last checkpoint (and its SVG) are kept as they were")
            self._backward(loss)
            for opt in optimizers:
                opt.step()
        for sched in schedulers:
            sched.step()
        self.advance(targets.eps_renoise, step)
        with torch.no_grad():
            self.after_step(step)
        if self.trajectory_every and int(step["step"]) % self.trajectory_every == 0:
            self.last_z0_hat = targets.z0
        logs = {f"train/{name}": term.value.detach().mean() for name, term in terms.items()}
        logs["train/loss"] = loss.detach()
        return logs

    def advance(self, eps_renoise: Tensor | None, step: dict) -> None:
        """Step 4, eq. (5): eps_tilde ← the renoising noise, mixed with fresh per-sample noise when eta > 0 (nothing
        to carry when ``eps_renoise`` is None)."""
        if eps_renoise is None:
            return
        noise = None
        if self.eta > 0:
            noise = randn_batch(tuple(eps_renoise.shape[1:]), self.seed, "eta", int(step["step"]), self.sample_names,
                                device=self.device, dtype=eps_renoise.dtype)
        with torch.no_grad():
            self.eps_tilde.copy_(eta_noise(eps_renoise, noise, step["level_t"], step["level_prev"], self.eta))

    def attached(self) -> bool:
        """Whether a Trainer drives this task (a task can also be stepped by hand, e.g. in ``tools/``)."""
        try:
            return self.trainer is not None
        except RuntimeError:            # Lightning's answer for a module without a trainer
            return False

    def _backward(self, loss: Tensor) -> None:
        if self.attached():
            self.manual_backward(loss)           # precision and strategy hooks, in fit and predict alike
        else:
            loss.backward()

    def training_step(self, step: dict, batch_idx: int) -> None:
        logs = self.dream_step(step, _as_list(self.optimizers()), _as_list(self.lr_schedulers()))
        # Lightning's `log` costs about a millisecond a call (a tiny model's whole step is a few): log at the
        # loggers' cadence, when they write, and at the last step, not in between
        if (batch_idx + 1) % self.trainer.log_every_n_steps == 0 or batch_idx + 1 == len(self.schedule):
            self.log_dict(logs, batch_size=1)
            if "t" in step:
                self.log("t", step["t"].float(), prog_bar=True, logger=False, batch_size=1)

    def make_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """The optimizer over the generator's parameter groups and the optional LR scheduler (fit and predict)."""
        opt = self.optimizer(self.generator.param_groups())
        return [opt], ([self.lr_scheduler(opt)] if self.lr_scheduler is not None else [])

    def configure_optimizers(self) -> Any:
        (opt,), schedulers = self.make_optimizers()
        return opt if not schedulers else {"optimizer": opt, "lr_scheduler": schedulers[0]}   # stepped by dream_step

    # ------------------------------------------------------------------ results
    def decode_latent(self, z: Tensor) -> Tensor:
        """Image (B, 3, H, W) in [0, 1] from a latent."""
        return ((self.backbone.decode(z) + 1) / 2).clamp(0, 1)

