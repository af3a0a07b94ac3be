"""Rectified-flow MMDiT families: SD 3 / 3.5 and Flux. Both predict the velocity ``v = eps - z0`` and follow the
flow-matching schedule of their own scheduler; the denoiser is called with ``sigma * num_train_timesteps`` (SD3)
or sigma (Flux)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..core import Level
from ..errors import InputError
from ..schedule import Pairing, Schedule, Spacing, flow_schedule, flow_timesteps
from .backbone import Backbone, tokenize
from .cond import Cond


def flux_shift(image_seq_len: int, config: Any) -> float:
    """Flux's resolution-dependent shift mu: linear in the number of latent tokens between
    (``base_image_seq_len``, ``base_shift``) and (``max_image_seq_len``, ``max_shift``) of the scheduler config."""
    x0, x1 = config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096)
    y0, y1 = config.get("base_shift", 0.5), config.get("max_shift", 1.15)
    return float(y0 + (image_seq_len - x0) * (y1 - y0) / (x1 - x0))


class FlowBackbone(Backbone):
    """A rectified-flow backbone: level ``(1 - sigma, sigma)``, velocity prediction, flow-matching sigmas."""

    denoiser_key = "transformer"
    prediction_type = "flow"
    latent_multiple = 2

    def level(self, t: Any) -> Level:
        """Sigma = t / num_train_timesteps; for a (B,) tensor of timesteps, (B, 1, 1, 1) levels on the device."""
        if isinstance(t, Tensor) and t.dim() > 0:
            sigma = (t.double().clamp(min=0) / self.num_train_timesteps).view(-1, 1, 1, 1)
            sigma = sigma.to(self.device, torch.float32)
            return Level(1 - sigma, sigma)
        return Level.flow(max(float(t), 0.0) / self.num_train_timesteps)

    def schedule(self, nfe: int, size: int, spacing: Spacing | None = None,
                 t_range: tuple[float, float] | None = None, pairing: Pairing = "diffusers") -> Schedule:
        """The sigmas of the model's own ``FlowMatchEulerDiscreteScheduler`` for ``size × size`` images."""
        if spacing is not None:
            raise InputError(f"spacing={spacing!r} sets DDIM timesteps of variance-preserving models; the {self.family} "
                             "backbone follows its scheduler's shifted flow-matching sigmas (leave spacing unset)")
        if pairing != "diffusers":
            raise InputError(f"pairing={pairing!r} reproduces the official SD1.5 code's alpha_bar indexing; it has no "
                             f"meaning for the rectified-flow {self.family} backbone")
        latent = size // self.vae_scale_factor
        sigmas, mu = self.sigma_recipe(nfe, (latent // self.latent_multiple) ** 2)
        ts, sig = flow_timesteps(nfe, self.scheduler.config, sigmas, mu)
        return flow_schedule(ts, sig, t_range, self.num_train_timesteps)

    def sigma_recipe(self, nfe: int, image_seq_len: int) -> tuple[list[float] | None, float | None]:
        """The sigmas and shift ``mu`` the family's diffusers pipeline passes to ``set_timesteps``."""
        cfg = self.scheduler.config
        return None, (flux_shift(image_seq_len, cfg) if cfg.get("use_dynamic_shifting") else None)


class SD3Backbone(FlowBackbone):
    """SD 3 / 3.5: penultimate hidden states of CLIP-L and CLIP-G (padded to T5's width) followed by T5's tokens
    (zeros without T5), and the two pooled projections side by side."""

    family = "sd3"
    text_encoder_keys = ("text_encoder", "text_encoder_2", "text_encoder_3")

    def _encode_rows(self, prompts: list[str]) -> dict[str, Tensor]:
        hidden, pooled = [], []
        for enc, tok in ((self.text_encoder, self.tokenizer), (self.text_encoder_2, self.tokenizer_2)):
            out = enc(tokenize(tok, prompts).to(self.device), output_hidden_states=True)
            pooled.append(out[0])
            hidden.append(out.hidden_states[-2])
        clip = torch.cat(hidden, dim=-1)
        length = self.options.max_sequence_length or 256
        if self.components.get("text_encoder_3") is None:
            t5 = torch.zeros(len(prompts), length, self.transformer.config.joint_attention_dim, device=self.device,
                             dtype=clip.dtype)
        else:
            t5 = self.text_encoder_3(tokenize(self.tokenizer_3, prompts, length).to(self.device))[0].to(clip.dtype)
        clip = torch.nn.functional.pad(clip, (0, t5.shape[-1] - clip.shape[-1]))
        return {"hidden": torch.cat([clip, t5], dim=-2), "pooled": torch.cat(pooled, dim=-1)}

    def _forward(self, z: Tensor, t: Any, cond: Cond) -> Tensor:
        t_vec = self.timestep_rows(t, z.shape[0], self.dtype)
        c = cond.tensors
        return self._net(hidden_states=z, timestep=t_vec, encoder_hidden_states=c["hidden"].to(self.device, self.dtype),
                         pooled_projections=c["pooled"].to(self.device, self.dtype), return_dict=False)[0]


class FluxBackbone(FlowBackbone):
    """Flux: T5 token embeddings and CLIP's pooled output; latents packed into 2×2 patches (tokens) with their
    positions (``img_ids``) for the transformer and unpacked again; the distilled guidance embedding
    (``options.guidance``) when the model has one. Classifier-free guidance in the tasks is *true* CFG — the null
    and the target prompts are separate rows of one batched call — which is what editing needs."""

    family = "flux"
    text_encoder_keys = ("text_encoder", "text_encoder_2")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ids: dict[tuple, Tensor] = {}

    def sigma_recipe(self, nfe: int, image_seq_len: int) -> tuple[list[float] | None, float | None]:
        """As ``FluxPipeline``: sigmas ``linspace(1, 1/nfe, nfe)`` shifted by mu of the image's token count."""
        mu = flux_shift(image_seq_len, self.scheduler.config) if self.scheduler.config.get("use_dynamic_shifting") \
            else None
        return np.linspace(1.0, 1.0 / nfe, nfe).tolist(), mu

    def _encode_rows(self, prompts: list[str]) -> dict[str, Tensor]:
        pooled = self.text_encoder(tokenize(self.tokenizer, prompts).to(self.device), output_hidden_states=False)
        length = self.options.max_sequence_length or 512
        t5 = self.text_encoder_2(tokenize(self.tokenizer_2, prompts, length).to(self.device),
                                 output_hidden_states=False)[0]
        return {"hidden": t5.to(self.dtype), "pooled": pooled.pooler_output.to(self.dtype)}

    def _positions(self, h: int, w: int, text_len: int) -> tuple[Tensor, Tensor]:
        """(h/2 · w/2, 3) image token ids (0, row, col) and (text_len, 3) zero text ids, built once per shape."""
        key = (h, w, text_len, self.device)
        if key not in self._ids:
            rows, cols = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
            img = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(-1, 3)
            self._ids[key] = (img.to(self.device, self.dtype), torch.zeros(text_len, 3, device=self.device,
                                                                            dtype=self.dtype))
        return self._ids[key]

    def _forward(self, z: Tensor, t: Any, cond: Cond) -> Tensor:
        b, c, h, w = z.shape
        tokens = z.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w // 4, c * 4)
        hidden = cond.tensors["hidden"].to(self.device, self.dtype)
        img_ids, txt_ids = self._positions(h, w, hidden.shape[1])
        t_vec = self.timestep_rows(t, b, self.dtype, 1.0 / self.num_train_timesteps)
        guidance = (torch.full((b,), float(self.options.guidance), device=self.device, dtype=torch.float32)
                    if self.transformer.config.guidance_embeds else None)
        out = self._net(hidden_states=tokens, timestep=t_vec, guidance=guidance,
                        pooled_projections=cond.tensors["pooled"].to(self.device, self.dtype),
                        encoder_hidden_states=hidden, txt_ids=txt_ids, img_ids=img_ids, return_dict=False)[0]
        return out.reshape(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)

    def to(self, device: str | torch.device) -> "FluxBackbone":
        self._ids.clear()
        return super().to(device)
