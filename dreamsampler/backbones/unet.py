"""Variance-preserving UNet families: SD 1.x / 2.x (CLIP) and SDXL (two CLIP encoders, pooled embedding, time ids)."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import DDIMScheduler
from torch import Tensor

from ..core import Level
from ..schedule import Pairing, Schedule, Spacing, ddim_timesteps, vp_schedule
from .backbone import Backbone, BackboneError, tokenize
from .cond import Cond

#: What a variance-preserving UNet may predict (``Backbone.denoise`` reads either as eps and z0).
VP_PREDICTION_TYPES = ("epsilon", "v_prediction")


class SDBackbone(Backbone):
    """SD 1.x / 2.x: ``UNet2DConditionModel`` on CLIP's last hidden states; epsilon or v prediction."""

    family = "sd"

    def __init__(self, components: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        components = dict(components)
        # the scheduler only provides the training noise levels and timestep conventions: read them as DDIM's
        components["scheduler"] = DDIMScheduler.from_config(components["scheduler"].config)
        super().__init__(components, *args, **kwargs)
        self.prediction_type = str(self.scheduler.config.get("prediction_type", "epsilon"))
        if self.prediction_type not in VP_PREDICTION_TYPES:
            raise BackboneError(f"backbone {self.name!r}: scheduler prediction_type {self.prediction_type!r} is not "
                                f"supported (expected one of {list(VP_PREDICTION_TYPES)})")
        self.alphas_cumprod = self.scheduler.alphas_cumprod.float()
        self.final_alpha_cumprod = float(self.scheduler.final_alpha_cumprod)

    def _encode_rows(self, prompts: list[str]) -> dict[str, Tensor]:
        ids = tokenize(self.tokenizer, prompts).to(self.device)
        return {"hidden": self.text_encoder(ids)[0]}

    def _unet_kwargs(self, z: Tensor, cond: Cond) -> dict[str, Any]:
        return {}

    def _forward(self, z: Tensor, t: Any, cond: Cond) -> Tensor:
        t_vec = self.timestep_rows(t, z.shape[0], torch.long)
        c = cond.tensors
        return self._net(z, t_vec, encoder_hidden_states=c["hidden"].to(self.device, self.dtype),
                         return_dict=False, **self._unet_kwargs(z, cond))[0]

    def level(self, t: Any) -> Level:
        """The level of timestep t (alpha_bar[t]; the final alpha_bar for t < 0); for a (B,) tensor of timesteps,
        (B, 1, 1, 1) levels on the device."""
        if isinstance(t, Tensor) and t.dim() > 0:
            ab = self.alphas_cumprod.double()[t.long().clamp(min=0)]
            ab = torch.where(t < 0, self.final_alpha_cumprod, ab).view(-1, 1, 1, 1).to(self.device, torch.float32)
            return Level(ab.sqrt(), (1 - ab).sqrt())
        t = int(t)
        return Level.vp(self.final_alpha_cumprod if t < 0 else float(self.alphas_cumprod[t]))

    def schedule(self, nfe: int, size: int, spacing: Spacing | None = None,
                 t_range: tuple[float, float] | None = None, pairing: Pairing = "diffusers") -> Schedule:
        """DDIM timesteps of the model's scheduler config (its ``timestep_spacing`` and ``steps_offset`` unless
        ``spacing`` is given), paired with alpha_bar as diffusers does or as the official code (``pairing``)."""
        cfg = self.scheduler.config
        ts = ddim_timesteps(nfe, self.num_train_timesteps, spacing or cfg.get("timestep_spacing", "leading"),
                            int(cfg.get("steps_offset", 0)), t_range=t_range)
        return vp_schedule(ts, self.alphas_cumprod, self.final_alpha_cumprod, pairing)


class SDXLBackbone(SDBackbone):
    """SDXL: penultimate hidden states of CLIP-L and CLIP-G side by side, CLIP-G's pooled projection and the
    micro-conditioning ``time_ids`` (original size, crop, target size = the working size, as the diffusers
    pipeline's defaults). Empty prompts are zero embeddings when the model says ``force_zeros_for_empty_prompt``
    (SDXL's own unconditional input, what diffusers uses without a negative prompt; ``zero_empty_prompt`` decides
    otherwise). Its VAE runs in fp32 by default: in fp16 it overflows to NaN."""

    family = "sdxl"
    text_encoder_keys = ("text_encoder", "text_encoder_2")
    default_vae_dtype = "fp32"

    def __init__(self, components: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if components.get("text_encoder") is None or components.get("text_encoder_2") is None:
            raise BackboneError("SDXL backbones need both text encoders (the SDXL refiner, which has only the "
                                "second, is not supported)")
        super().__init__(components, *args, **kwargs)
        zero = self.options.zero_empty_prompt
        self.force_zeros_for_empty_prompt = bool(components.get("force_zeros_for_empty_prompt", True)
                                                 if zero is None else zero)
        self._time_ids: dict[tuple, Tensor] = {}

    def _encode_rows(self, prompts: list[str]) -> dict[str, Tensor]:
        hidden, pooled = [], None
        for enc, tok in ((self.text_encoder, self.tokenizer), (self.text_encoder_2, self.tokenizer_2)):
            out = enc(tokenize(tok, prompts).to(self.device), output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]           # the last encoder's projected pooled output
        rows = {"hidden": torch.cat(hidden, dim=-1), "pooled": pooled}
        if self.force_zeros_for_empty_prompt:
            empty = torch.tensor([not p.strip() for p in prompts], device=self.device).view(-1, 1, 1)
            rows = {"hidden": rows["hidden"].masked_fill(empty, 0), "pooled": pooled.masked_fill(empty[:, 0], 0)}
        return rows

    def _unet_kwargs(self, z: Tensor, cond: Cond) -> dict[str, Any]:
        h, w = z.shape[-2] * self.vae_scale_factor, z.shape[-1] * self.vae_scale_factor
        key = (z.shape[0], h, w, self.device)
        if key not in self._time_ids:     # built once per shape: no host-to-device copy per step
            ids = torch.tensor([h, w, 0, 0, h, w], dtype=self.dtype)
            self._time_ids[key] = ids.to(self.device).expand(z.shape[0], -1).contiguous()
        return {"added_cond_kwargs": {"text_embeds": cond.tensors["pooled"].to(self.device, self.dtype),
                                      "time_ids": self._time_ids[key]}}

    def to(self, device: str | torch.device) -> "SDXLBackbone":
        self._time_ids.clear()
        return super().to(device)
