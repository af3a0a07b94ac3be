"""Score-distillation baselines on the step contract: SDS, DDS and PDS image editing as DreamSampler tasks.

Theorem 1 of the paper read the other way: a distillation method is a DreamSampler step whose proximal target is
built directly, ``z0 = x - grad`` (``core.distill``), whose steps are i.i.d. iterations (a t and a fresh noise per
sample, drawn from keyed streams) instead of a reverse sweep, and which carries no renoising noise. So the
methods get batching, skip-if-done, fault isolation, resume and DDP from the same ``dream_step`` and ``predict``.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from ..core import Term, cfg, renoise, squared_error
from ..core.distill import dds_grad, distill_target, pds_grad, pds_noise, sds_grad
from ..errors import InputError
from ..schedule import Schedule
from ..seeding import randint_batch, randn_batch
from .base import Targets
from .edit import EditBatch, EditTask


def dds_sgd(params: Any) -> torch.optim.Optimizer:
    """The DDS notebook's optimizer: plain SGD, lr 0.1."""
    return torch.optim.SGD(params, lr=0.1)


def distill_adam(params: Any) -> torch.optim.Optimizer:
    """Adam, lr 0.01: SDS and PDS on a latent (the official codes optimize NeRFs/SVGs with Adam and give no latent
    setting; 0.05 turned the shipped prior's faces to noise at omega 100, 0.01 kept them)."""
    return torch.optim.Adam(params, lr=0.01)


class ScoreDistillation:
    """Mixin for a ``DreamSamplerTask`` whose ``nfe`` steps are score-distillation iterations.

    Iteration i draws per sample a timestep uniform on ``t_choices()`` (stream ``(seed, "t", i, sample)``) and a
    noise eps (``(seed, "distill", i, sample)``), so a sample's run does not depend on its batch and resumes
    exactly. ``targets`` returns ``z0 = x - grad`` and no renoising noise; the term
    ``(grad_scale / 2) ||E(g(psi)) - z0||^2`` has gradient ``grad_scale * grad``: the official loss's scale.
    """

    grad_scale: float = 1.0

    def make_schedule(self, size: int) -> Schedule:
        """``nfe`` iterations, each a batch ``{"step": i}`` (resumable like a reverse schedule)."""
        self.t_choices()                     # a bad t_range fails here, before anything runs
        return Schedule([{"step": torch.tensor(i)} for i in range(self.nfe)])

    def t_choices(self) -> Tensor:
        """The timesteps an iteration draws from (uniformly): the integers of ``t_range``, both ends included."""
        lo, hi = (int(v) for v in self.t_range)
        if not 0 <= lo <= hi < self.backbone.num_train_timesteps:
            raise InputError(f"t_range must satisfy 0 <= t_min <= t_max < {self.backbone.num_train_timesteps}, got "
                             f"{list(self.t_range)}")
        return torch.arange(lo, hi + 1)

    def resolve_step(self, step: dict, x: Tensor) -> dict:
        """Per sample: t (and its level), the noise that makes z_t, and ``x`` itself (the targets' base)."""
        i, names = int(step["step"]), self.sample_names
        choices = self.t_choices()
        t = choices[randint_batch(len(choices), self.seed, "t", i, names)]
        noise = randn_batch(tuple(x.shape[1:]), self.seed, "distill", i, names, device=x.device, dtype=x.dtype)
        return {**step, "t": t, "level_t": self.backbone.level(t), "noise": noise, "x": x}

    def terms(self, g_out: Tensor, latent: Tensor, targets: Targets, step: dict) -> dict[str, Term]:
        return {"distill": Term(squared_error(latent, targets.z0), weight=self.grad_scale / 2)}

    # the host task provides ``target_prompts()`` (the target branch's texts, one per sample) and, for the
    # two-branch methods, ``z_source`` (the source latents) and ``src_prompts``

    def guided_eps(self, z_t: Tensor, step: dict, prompts: list[str]) -> Tensor:
        """CFG eps (eq. 6, ``guidance_scale``) for rows ``z_t`` with their prompts: one denoiser call."""
        uc, c = self.denoise_prompts(z_t, step, self.null_prompt, prompts)
        return cfg(uc.eps, c.eps, self.guidance_scale)

    def branches(self, z_t: Tensor, step: dict) -> tuple[Tensor, Tensor, Tensor]:
        """The source branch's z_t (the target's t and noise on ``z_source``) and the CFG eps of the target and the
        source branches, from one denoiser call."""
        z_src_t = renoise(self.z_source, step["noise"], step["level_t"])
        eps = self.guided_eps(torch.cat([z_t, z_src_t]), step, self.target_prompts() + self.src_prompts)
        return (z_src_t, *eps.chunk(2))


class SDS(ScoreDistillation):
    """SDS (DreamFusion): ``grad = (1 - alpha_bar_t)(eps_hat_omega(z_t, c) - eps)``."""

    needs_source_prompt = False

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        eps = self.guided_eps(z_t, step, self.target_prompts())
        grad = sds_grad(eps, step["noise"], 1 - step["level_t"].alpha_bar)
        return Targets(z0=distill_target(step["x"], grad), eps_renoise=None)


class DDS(ScoreDistillation):
    """DDS (Hertz et al. 2023): ``grad = eps_hat_omega(z_t^tgt, c_tgt) - eps_hat_omega(z_t^src, c_src)``, t and eps
    shared by the branches."""

    needs_source_prompt = True

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        _, eps_tgt, eps_src = self.branches(z_t, step)
        return Targets(z0=distill_target(step["x"], dds_grad(eps_tgt, eps_src)), eps_renoise=None)


class PDS(ScoreDistillation):
    """PDS (Koo et al. 2024) as the official ``pds.py``: t on its 500-step grid (odd t; t_prev = t - 2), eps and
    eps_prev shared by the branches, the single-step posterior of ``core.distill.pds_noise``."""

    needs_source_prompt = True

    def t_choices(self) -> Tensor:
        """The odd timesteps of ``t_range`` (the grid of DDIM with 500 steps, leading spacing, offset 1)."""
        t = super().t_choices()
        return t[(t % 2 == 1) & (t >= 3)]

    def resolve_step(self, step: dict, x: Tensor) -> dict:
        if self.backbone.prediction_type == "flow":
            raise InputError("PDS uses the DDPM posterior of a variance-preserving model; this backbone is a flow")
        step = super().resolve_step(step, x)
        i, t_prev = int(step["step"]), step["t"] - 2
        noise_prev = randn_batch(tuple(x.shape[1:]), self.seed, "distill-prev", i, self.sample_names,
                                 device=x.device, dtype=x.dtype)
        beta_t = self.backbone.scheduler.betas.double()[step["t"]].view(-1, 1, 1, 1).to(x.device, x.dtype)
        return {**step, "level_prev": self.backbone.level(t_prev), "noise_prev": noise_prev, "beta_t": beta_t}

    def targets(self, z_t: Tensor, step: dict) -> Targets:
        z_src_t, eps_tgt, eps_src = self.branches(z_t, step)
        args = (step["noise_prev"], step["level_t"], step["level_prev"], step["beta_t"])
        grad = pds_grad(pds_noise(step["x"], z_t, eps_tgt, *args), pds_noise(self.z_source, z_src_t, eps_src, *args))
        return Targets(z0=distill_target(step["x"], grad), eps_renoise=None)


def check_t_range(t_range: Any) -> None:
    """0 <= t_min <= t_max (the upper bound is the backbone's, checked when it is loaded)."""
    lo, hi = t_range
    if not 0 <= lo <= hi:
        raise InputError(f"t_range must be [t_min, t_max] with 0 <= t_min <= t_max, got {list(t_range)}")


class DistillEditTask(EditTask):
    """Editing by score distillation from ``psi = E(source)`` (the VAE mean, as the DDS notebook), one global
    prompt per sample; ``source_prompt`` (per sample, or this default) is the source branch's text (DDS, PDS).
    A method mixin (``SDS``, ``DDS``, ``PDS``) comes first in a concrete class's bases."""

    needs_source_prompt = True

    def __init__(self, source_prompt: str | None = None, guidance_scale: float = 7.5, **kwargs: Any) -> None:
        self.default_source_prompt, self.guidance_scale = source_prompt, guidance_scale
        super().__init__(**kwargs)
        check_t_range(self.t_range)

    def check_item(self, item: dict) -> list[str]:
        problems = super().check_item(item)
        if item.get("regions") is not None:
            problems.append(f"`regions`: {type(self).__name__} edits with one global `prompt` per sample")
        if self.needs_source_prompt and not item.get("source_prompt") and not self.default_source_prompt:
            problems.append(f"`source_prompt` is missing: {type(self).__name__} needs the source image's text "
                            "(or the task's `source_prompt`)")
        return problems

    def source_prompts(self, batch: EditBatch) -> list[str]:
        prompts = [p or self.default_source_prompt for p in batch.source_prompts]
        if self.needs_source_prompt and not all(prompts):
            missing = [n for n, p in zip(batch.names, prompts) if not p]
            raise InputError(f"{type(self).__name__}: edits {missing} have no `source_prompt` (the source image's "
                             "text), and the task has no default `source_prompt`")
        return [p or self.null_prompt for p in prompts]

    def target_prompts(self) -> list[str]:
        return self.edit_batch.prompts

    def build_generator(self, batch: EditBatch):
        generator = super().build_generator(batch)
        self.require_global_prompts(batch)
        self.register_buffer("z_source", self.backbone.encode(batch.source.to(self.device) * 2 - 1), persistent=False)
        self.src_prompts = self.source_prompts(batch)
        return generator

    def start(self, batch: EditBatch) -> Tensor:
        """psi = E(source); eps_tilde is not used (every iteration draws its own noise)."""
        self.generator.set_latent(self.z_source)
        return torch.zeros_like(self.z_source)


class SDSEditTask(SDS, DistillEditTask):
    """SDS (DreamFusion) as an editor, threestudio's defaults: t uniform on [20, 980] (both ends), omega 100 in
    threestudio's form ``eps_c + s (eps_c - eps_u)`` = 101 here (standard CFG), Adam, ``grad_scale`` 1 (its loss
    ``0.5 ||x - target||^2 / B`` per sample)."""

    def __init__(self, guidance_scale: float = 101.0, t_range: tuple[float, float] = (20, 980), nfe: int = 200,
                 optimizer: OptimizerCallable = distill_adam, grad_scale: float = 1.0, **kwargs: Any) -> None:
        self.grad_scale = grad_scale
        super().__init__(guidance_scale=guidance_scale, t_range=t_range, nfe=nfe, optimizer=optimizer, **kwargs)


class DDSEditTask(DDS, DistillEditTask):
    """DDS with the notebook's defaults: omega 7.5, t uniform on [50, 948], SGD lr 0.1, 200 iterations, and its
    loss ``2000 sum(z grad) / (H W)`` — ``grad_scale`` 2000/4096 at SD's 64×64 latents (a step of 0.0488 grad)."""

    def __init__(self, guidance_scale: float = 7.5, t_range: tuple[float, float] = (50, 948), nfe: int = 200,
                 optimizer: OptimizerCallable = dds_sgd, grad_scale: float = 2000 / 4096, **kwargs: Any) -> None:
        self.grad_scale = grad_scale
        super().__init__(guidance_scale=guidance_scale, t_range=t_range, nfe=nfe, optimizer=optimizer, **kwargs)


class PDSEditTask(PDS, DistillEditTask):
    """PDS with ``pds.py``'s defaults: t in {21, 23, ..., 979} (2k + 1 for k uniform in [10, 489]; ``t_range``
    bounds it), omega 100, ``grad_scale`` 1/16384 (its loss ``0.5 mse_mean / B`` at SD's 4×64×64 latents), Adam."""

    def __init__(self, guidance_scale: float = 100.0, t_range: tuple[float, float] = (21, 979), nfe: int = 200,
                 optimizer: OptimizerCallable = distill_adam, grad_scale: float = 1 / 16384, **kwargs: Any) -> None:
        self.grad_scale = grad_scale
        super().__init__(guidance_scale=guidance_scale, t_range=t_range, nfe=nfe, optimizer=optimizer, **kwargs)
