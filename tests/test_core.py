"""Pure maths and schedules against diffusers' own schedulers (an independent reference)."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

from dreamsampler.core import cfg, ddim_invert, eta_noise, localized_eps, renoise, z0_hat
from dreamsampler.backbones.presets import sd15_scheduler
from dreamsampler.schedule import ReverseSchedule, ddim_timesteps
from dreamsampler.seeding import randn


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_tweedie_and_renoise_equal_diffusers_ddim_step(eta):
    sched = sd15_scheduler()
    sched.set_timesteps(20)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 4, 8, 8, generator=g)
    for t in sched.timesteps[:5].tolist():
        eps = torch.randn(z.shape, generator=g)
        noise = torch.randn(z.shape, generator=g)
        ref = sched.step(eps, t, z, eta=eta, variance_noise=noise).prev_sample
        t_prev = t - 1000 // 20
        ab = sched.alphas_cumprod[t]
        ab_prev = sched.alphas_cumprod[t_prev] if t_prev >= 0 else sched.final_alpha_cumprod
        ours = renoise(z0_hat(z, eps, ab), eta_noise(eps, noise, ab, ab_prev, eta), ab_prev)
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
        z = ref


def test_timesteps_match_diffusers_and_t_range():
    sched = sd15_scheduler()
    sched.set_timesteps(200)
    assert torch.equal(ddim_timesteps(200), sched.timesteps.long())
    assert ddim_timesteps(200)[:2].tolist() == [996, 991]
    ts = ddim_timesteps(100, t_range=(50, 950))
    assert ts.max() <= 950 and ts.min() >= 50 and torch.all(ts[:-1] > ts[1:])
    with pytest.raises(ValueError, match="nfe must be a positive integer"):
        ddim_timesteps(0)


def test_inversion_equals_diffusers_inverse_scheduler():
    sched = sd15_scheduler()
    inv = DDIMInverseScheduler.from_config(sched.config, set_alpha_to_one=True)
    inv.set_timesteps(10)
    w = torch.randn(4, 4, 1, 1, generator=torch.Generator().manual_seed(1)) * 0.3
    eps_fn = lambda z, t: torch.tanh(torch.nn.functional.conv2d(z, w) + t / 1000)     # a fixed toy "model"
    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    ref = z0
    for t in inv.timesteps.tolist():
        ref = inv.step(eps_fn(ref, t), t, ref).prev_sample
    ours = ddim_invert(eps_fn, z0, ddim_timesteps(10), sched.alphas_cumprod)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    psi, eps = ddim_invert(eps_fn, z0, ddim_timesteps(10), sched.alphas_cumprod, return_pair=True)
    assert torch.equal(renoise(psi, eps, sched.alphas_cumprod[ddim_timesteps(10)[0]]), ours)


def test_cfg_and_localized_eps():
    uc, c = torch.zeros(1, 1, 2, 2), torch.ones(2, 1, 2, 2) * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    guided = cfg(uc, c, 0.5)
    masks = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 1.0], [0.0, 0.0]]]])
    out = localized_eps(uc, guided, masks)
    assert out.flatten().tolist() == [0.5, 1.5, 0.0, 0.0]
    assert torch.equal(localized_eps(uc, guided[:1], None), guided[:1])


def test_schedule_loader_state_roundtrip():
    sched = sd15_scheduler()
    loader = ReverseSchedule(ddim_timesteps(5), sched.alphas_cumprod, float(sched.final_alpha_cumprod))
    it = iter(loader)
    first = [next(it)["t"].item() for _ in range(2)]
    state = loader.state_dict()
    resumed = ReverseSchedule(ddim_timesteps(5), sched.alphas_cumprod, float(sched.final_alpha_cumprod))
    resumed.load_state_dict(state)
    rest = [b["t"].item() for b in resumed]
    assert first + rest == ddim_timesteps(5).tolist()
    last = list(ReverseSchedule(ddim_timesteps(5), sched.alphas_cumprod, 0.5))[-1]
    assert last["t_prev"].item() == -1 and last["alpha_bar_prev"].item() == 0.5


def test_noise_depends_only_on_seed_and_step():
    a = randn((3,), seed=1, step=4)
    assert torch.equal(a, randn((3,), seed=1, step=4))
    assert not torch.equal(a, randn((3,), seed=1, step=5))
    assert not torch.equal(a, randn((3,), seed=2, step=4))
