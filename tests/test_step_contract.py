"""The step contract of DreamSamplerTask: named weighted terms (weights from the step), gradients through the
frozen nets on request (DPS), starts from noise or a given psi."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from safetensors.torch import save_file

from dreamsampler.core import Term
from dreamsampler.errors import InputError
from dreamsampler.tasks import GenerateTask, Targets


def trainer(tmp_path):
    return L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path)


class ShrinkTask(GenerateTask):
    """Proximal term plus ``alpha_bar_t * ||psi||^2``: one SGD step of lr 0.5 must land on z0 - alpha_bar_t psi."""

    def terms(self, g_out, latent, targets, step):
        self.seen.append((latent.detach().clone(), targets.z0.clone(), float(step["alpha_bar_t"])))
        return {**super().terms(g_out, latent, targets, step),
                "shrink": Term(latent.pow(2).flatten(1).sum(1), weight=step["alpha_bar_t"])}


def test_named_weighted_terms_follow_the_closed_form_and_are_logged(tiny_backbone, tmp_path):
    task = ShrinkTask(samples=[{"prompt": "a red circle", "name": "a"}, {"prompt": "a blue square", "name": "b"}],
                      size=16, backbone="tiny", nfe=4, omega=2.0)
    task.backbone, task.seen = tiny_backbone, []
    tr = trainer(tmp_path)
    tr.fit(task)
    psi_after = [s[0] for s in task.seen[1:]] + [task.generator.psi.detach()]
    for (psi, z0, ab), after in zip(task.seen, psi_after):
        torch.testing.assert_close(after, z0 - ab * psi, rtol=1e-5, atol=1e-5)
    assert {"train/prox", "train/shrink", "train/loss"} <= set(tr.callback_metrics)


class DPSTask(GenerateTask):
    """A DPS step (algorithms.md): z0 = z0_hat(z_t), target z0 - d||y - D(z0)||/dz_t through the UNet and decoder."""

    def needs_backbone_grad(self, step):
        return True

    def targets(self, z_t, step):
        bb, ab = self.backbone, step["alpha_bar_t"]
        out = self.denoise(z_t, step, bb.encode_text([self.null_prompt] * z_t.shape[0]), grad=True)
        residual = (self.y - bb.decode(out.z0, grad=True)).flatten(1).norm(dim=1).sum()
        (grad,) = torch.autograd.grad(residual, z_t)
        self.seen.append((z_t.detach().clone(), int(step["t"]), float(ab), grad))
        return Targets(z0=out.z0 - grad, eps_renoise=out.eps)


def test_gradient_through_the_frozen_unet_and_decoder(tiny_backbone, tmp_path):
    task = DPSTask(prompt="a red circle", size=16, backbone="tiny", nfe=3)
    task.backbone, task.seen = tiny_backbone, []
    task.y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    trainer(tmp_path).fit(task)
    assert len(task.seen) == 3 and all(g.abs().max() > 0 for *_, g in task.seen)
    # independent reference: central finite differences of the same residual, in float64 on copies of the nets
    z_t, t, ab, grad = task.seen[1]
    unet, vae = copy.deepcopy(tiny_backbone.unet).double(), copy.deepcopy(tiny_backbone.vae).double()
    null = tiny_backbone.encode_text([""]).tensors["hidden"].double()
    sf = tiny_backbone.scaling_factor

    def residual(z):
        eps = unet(z, torch.tensor([t]), encoder_hidden_states=null).sample
        z0 = (z - (1 - ab) ** 0.5 * eps) / ab ** 0.5
        return (task.y.double() - vae.decode(z0 / sf).sample).norm()

    d = torch.randn(z_t.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = 1e-4
    with torch.no_grad():
        fd = (residual(z_t.double() + h * d) - residual(z_t.double() - h * d)) / (2 * h)
    ours = (grad.double() * d).sum()
    assert abs(ours - fd) / abs(fd) < 1e-3, (ours, fd)
    # the frozen nets stayed frozen and out of the checkpoint
    assert all(p.grad is None and not p.requires_grad for p in tiny_backbone.unet.parameters())
    assert set(task.state_dict()) == {"generator.psi", "eps_tilde", "initialized"}


def test_start_from_a_given_psi(tiny_backbone, tmp_path):
    given = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    save_file({"psi": given}, str(tmp_path / "psi.safetensors"))
    seen = []

    class Spy(GenerateTask):
        def targets(self, z_t, step):
            seen.append(z_t.detach().clone())
            return super().targets(z_t, step)

    common = dict(prompt="a red circle", size=16, backbone="tiny", nfe=2, seed=5)
    for init in (str(tmp_path / "psi.safetensors"), None):
        task = Spy(init_latent=init, **common)
        task.backbone = tiny_backbone
        trainer(tmp_path).fit(task)
    ab_T = float(tiny_backbone.alphas_cumprod[task.schedule.steps[0]["t"]])
    # z_T = sqrt(ab_T) psi_given + sqrt(1 - ab_T) eps, the same eps as from psi = 0
    torch.testing.assert_close(seen[0] - seen[2], ab_T ** 0.5 * given, rtol=1e-5, atol=1e-5)

    save_file({"psi": torch.zeros(1, 4, 4, 4)}, str(tmp_path / "small.safetensors"))
    task = GenerateTask(init_latent=str(tmp_path / "small.safetensors"), **common)
    task.backbone = tiny_backbone
    with pytest.raises(InputError, match=r"psi has shape \(1, 4, 4, 4\), expected \(1, 4, 8, 8\)"):
        trainer(tmp_path).fit(task)
