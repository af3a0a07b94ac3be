"""DreamSampler as a LightningModule (Alg. 2): psi are the only parameters, the schedule is the dataloader.

Each training step is one reverse step t → t⁻:
  1. ``z_t = renoise(E(g(psi)), eps_tilde, alpha_bar_t)``                       eq. (12)
  2. ``eps_hat`` (and the renoising noise) from the frozen backbone           subclass: ``predict``
  3. one optimizer step on ``||E(g(psi)) - z0_hat||^2 + lambda R``           eqs. (13)-(14)
  4. ``eps_tilde <- eta_noise(eps_renoise, noise(seed, step))``              eq. (5), inside ``optimizer_step``
State that must survive a restart (psi, eps_tilde, whether the start was initialised) is parameters or
persistent buffers; the frozen backbone is a plain attribute and never reaches ``state_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ..core import eta_noise, renoise, z0_hat
from ..guidance import Backbone
from ..guidance.backbone import DType
from ..schedule import ReverseSchedule, ddim_timesteps
from ..schedule.timesteps import Spacing
from ..seeding import randn
from ..errors import InputError


@dataclass
class Prediction:
    """What a task's ``predict`` returns for one reverse step."""

    eps_hat: Tensor          #: the guided estimate that defines the proximal target z0_hat
    eps_renoise: Tensor      #: the noise carried to the next step (Alg. 3: the unconditional one)


class DreamSamplerTask(L.LightningModule):
    """Base task: a generator ``g`` (an ``nn.Module`` holding psi) driven through a reverse DDIM schedule.

    Args:
        backbone: frozen model source: ``"shapes"`` (shipped prior), ``"tiny"``, ``"sd15-random"``, a hub id,
            a diffusers folder or a ``.safetensors`` file.
        backbone_dtype: dtype of the frozen networks (``fp32``, ``fp16``, ``bf16``).
        nfe: number of reverse steps (= UNet evaluations per prompt batch).
        spacing: DDIM timestep spacing, as diffusers' ``timestep_spacing``.
        t_range: optional ``[t_min, t_max]`` kept from the schedule.
        eta: stochasticity of eq. (5); 0 is deterministic (Alg. 3).
        seed: run seed; step noise comes from generators seeded by ``(seed, step)``.
        lr: step size zeta of the proximal update; 0.5 makes one SGD step on the summed squared error land
            exactly on the minimiser of ``||psi - z0_hat||^2`` (design/algorithms.md).
        trajectory_every: store the decoded z0_hat every this many steps for the TensorBoard callback (0: never).
    """

    def __init__(self, backbone: str = "shapes", backbone_dtype: DType = "fp32", nfe: int = 50,
                 spacing: Spacing = "leading", t_range: tuple[int, int] | None = None, eta: float = 0.0,
                 seed: int = 0, lr: float = 0.5, trajectory_every: int = 10) -> None:
        super().__init__()
        if not isinstance(nfe, int) or isinstance(nfe, bool) or nfe <= 0:
            raise InputError(f"nfe must be a positive integer, got {nfe!r}")
        Backbone.check_source(backbone, backbone_dtype)
        if eta < 0:
            raise InputError(f"eta must be >= 0, got {eta}")
        self.backbone_source, self.backbone_dtype = backbone, backbone_dtype
        self.nfe, self.spacing, self.t_range, self.eta, self.seed, self.lr = nfe, spacing, t_range, eta, seed, lr
        self.trajectory_every = trajectory_every
        self.guidance: Backbone | None = None     # plain attribute: never a registered submodule
        self.generator: nn.Module | None = None
        self.register_buffer("initialized", torch.tensor(False))
        self._pending_eps: Tensor | None = None
        self.last_z0_hat: Tensor | None = None

    # ------------------------------------------------------------------ hooks for subclasses
    def build_generator(self) -> nn.Module:
        """Return the generator module holding psi (shapes may depend on ``self.guidance``)."""
        raise NotImplementedError

    def init_state(self) -> Tensor:
        """Set psi to its start value (e.g. from DDIM inversion) and return eps_tilde's start value."""
        raise NotImplementedError

    def predict(self, z_t: Tensor, batch: dict) -> Prediction:
        """The frozen model's estimates at ``z_t`` for this step (no gradient through the UNet)."""
        raise NotImplementedError

    def regularizer(self, g_out: Tensor, batch: dict) -> Tensor | None:
        """lambda·R(g(psi)) of eq. (13); None for the plain proximal step."""
        return None

    # ------------------------------------------------------------------ shared machinery
    def load_guidance(self, device: torch.device | None = None) -> Backbone:
        """The frozen backbone, loaded once, on ``device`` (default: where the task's tensors are)."""
        device = device or self.device
        if self.guidance is None:
            self.guidance = Backbone.load(self.backbone_source, dtype=self.backbone_dtype, device=device)
        elif self.guidance.device != device:
            self.guidance.to(device)
        return self.guidance

    @property
    def target_device(self) -> torch.device:
        """Where this task will run: the strategy's device under a Trainer (``setup`` runs before the module is
        moved there), else the module's own device."""
        return self._trainer.strategy.root_device if self._trainer is not None else self.device

    def setup(self, stage: str) -> None:
        precision = str(self._trainer.precision) if self._trainer is not None else "32-true"
        if precision in ("16-mixed", "16", "16-true", "bf16-true", "transformer-engine", "transformer-engine-float16"):
            raise InputError(f"trainer.precision={precision!r} is not supported for psi: 16-mixed's GradScaler "
                             "silently skips reverse steps on overflow and *-true half precision loses the proximal "
                             "update; use 32-true or bf16-mixed (the frozen nets' dtype is `backbone_dtype`)")
        bb = self.load_guidance(self.target_device)
        if stage == "predict":      # predict_step runs one standalone sample task per item: no psi here
            return
        if self.generator is None:
            self.generator = self.build_generator()
            self.to(self.target_device)          # psi and the buffers build_generator registered
            latent = self.encode_generated(self.generator()).detach()
            self.register_buffer("eps_tilde", torch.zeros_like(latent))
        self.timesteps = ddim_timesteps(self.nfe, bb.num_train_timesteps, self.spacing,
                                        t_range=tuple(self.t_range) if self.t_range else None)

    def encode_generated(self, g_out: Tensor) -> Tensor:
        """E(g(psi)): identity for latent generators, the VAE encoder for image generators (with gradient)."""
        if getattr(self.generator, "outputs_latent", False):
            return g_out
        return self.guidance.encode(g_out * 2 - 1, grad=torch.is_grad_enabled())

    def on_fit_start(self) -> None:
        self.initialize()

    def initialize(self) -> None:
        """Set the start state (psi, eps_tilde) unless a checkpoint already restored it."""
        if not bool(self.initialized):
            with torch.no_grad():
                self.eps_tilde.copy_(self.init_state())
                self.initialized.fill_(True)

    def train_dataloader(self) -> ReverseSchedule:
        bb = self.load_guidance()
        return ReverseSchedule(self.timesteps, bb.alphas_cumprod, bb.final_alpha_cumprod)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Schedule batches are a few scalars: keep them on the host, so reading t or alpha_bar never waits
        for the accelerator (the model's tensors use them as 0-dim CPU scalars)."""
        return batch

    def reverse_step(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """Steps 1-2 of the class docstring and the objective of step 3; stages eps~ for ``advance``."""
        ab_t, ab_prev = batch["alpha_bar_t"], batch["alpha_bar_prev"]
        g_out = self.generator()
        latent = self.encode_generated(g_out)
        z_t = renoise(latent.detach(), self.eps_tilde, ab_t)
        with torch.no_grad():
            pred = self.predict(z_t, batch)
            target = z0_hat(z_t, pred.eps_hat, ab_t)
        loss = (latent - target).pow(2).sum()
        logs = {"train/prox": loss.detach(), "train/t": batch["t"].float()}
        reg = self.regularizer(g_out, batch)
        if reg is not None:
            logs["train/reg"] = reg.detach()
            loss = loss + reg
        noise = None
        if self.eta > 0:
            noise = randn(tuple(z_t.shape), self.seed, int(batch["step"]), device=self.device, dtype=z_t.dtype)
        self._pending_eps = eta_noise(pred.eps_renoise, noise, ab_t, ab_prev, self.eta)
        if self.trajectory_every and int(batch["step"]) % self.trajectory_every == 0:
            self.last_z0_hat = target.detach()
        return loss, logs

    def advance(self) -> None:
        """Step 4: eps_tilde ← eps~ (call right after the optimizer step)."""
        if self._pending_eps is not None:
            self.eps_tilde.copy_(self._pending_eps)
            self._pending_eps = None

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss, logs = self.reverse_step(batch)
        self.log_dict(logs)
        self.log("t", batch["t"].float(), prog_bar=True, logger=False)
        return loss

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """The proximal update, then the state advance *inside* the step, so checkpoints are consistent."""
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        self.advance()

    def run_standalone(self) -> None:
        """The whole reverse schedule without a Trainer (one sample of a ``predict`` run): the same
        ``reverse_step``/``advance`` as ``fit``, driven by a plain loop."""
        self.setup("fit")
        self.initialize()
        optimizer = self.configure_optimizers()
        with torch.inference_mode(False), torch.enable_grad():
            for batch in self.train_dataloader():
                optimizer.zero_grad(set_to_none=True)
                self.reverse_step(batch)[0].backward()
                optimizer.step()
                self.advance()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.generator.parameters(), lr=self.lr)

    # ------------------------------------------------------------------ results
    def decode_latent(self, z: Tensor) -> Tensor:
        """Image (B, 3, H, W) in [0, 1] from a latent."""
        return ((self.guidance.decode(z) + 1) / 2).clamp(0, 1)

    def result_images(self) -> dict[str, Tensor]:
        """Named (3, H, W) images in [0, 1] that the export callback writes as PNG at the end of fit."""
        return {}
