"""Pure maths and schedules against diffusers' own schedulers (an independent reference), for variance-preserving
and rectified-flow noise levels."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler, FlowMatchEulerDiscreteScheduler

from dreamsampler.backbones.presets import sd15_scheduler
from dreamsampler.core import (CLEAN, Denoised, Level, cfg, ddim_invert, ddim_sample, denoised, eta_noise, localized_eps,
                               renoise, z0_hat)
from dreamsampler.schedule import (ReverseSchedule, ddim_timesteps, flow_schedule, flow_timesteps, reverse_steps,
                                   vp_schedule)
from dreamsampler.seeding import PURPOSES, randn


def vp(ab) -> Level:
    return Level.vp(float(ab))


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
        ours = renoise(z0_hat(z, eps, vp(ab)), eta_noise(eps, noise, vp(ab), vp(ab_prev), eta), vp(ab_prev))
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
        z = ref


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_denoised_equals_diffusers_pred_original_sample(prediction_type):
    """(eps, z0) read from an eps or v output agree with DDIMScheduler's own conversion."""
    sched = sd15_scheduler(prediction_type)
    sched.set_timesteps(10)
    g = torch.Generator().manual_seed(3)
    z, out = torch.randn(2, 4, 4, 4, generator=g), torch.randn(2, 4, 4, 4, generator=g)
    t = int(sched.timesteps[2])
    ref = sched.step(out, t, z, eta=0.0)
    ours = denoised(out, z, vp(sched.alphas_cumprod[t]), prediction_type)
    torch.testing.assert_close(ours.z0, ref.pred_original_sample, rtol=1e-5, atol=1e-5)


def test_flow_denoised_and_renoise_equal_diffusers_euler_step():
    """x0 = x_t - sigma v, eps = x_t + (1 - sigma) v, then renoise at the next sigma = diffusers' Euler step."""
    sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    sched.set_timesteps(8)
    g = torch.Generator().manual_seed(4)
    z = torch.randn(2, 16, 4, 4, generator=g)
    for i, t in enumerate(sched.timesteps):
        v = torch.randn(z.shape, generator=g)
        sigma, sigma_next = float(sched.sigmas[i]), float(sched.sigmas[i + 1])
        ref = sched.step(v, t, z).prev_sample
        d = denoised(v, z, Level.flow(sigma), "flow")
        torch.testing.assert_close(d.z0, z - sigma * v)
        torch.testing.assert_close(renoise(d.z0, d.eps, Level.flow(sigma_next)), ref, rtol=1e-5, atol=1e-5)
        z = ref
    # at sigma = 1 (a = 0) z0 still comes out exact: x0 = x_t - v
    assert float(sched.sigmas[0]) == 1.0


def test_eta_noise_general_form_and_clean_next_level():
    g = torch.Generator().manual_seed(5)
    eps, noise = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    # alpha_bar_prev = 1 (schedulers with set_alpha_to_one, or a flow's last step): no NaN, the noise is irrelevant
    for level_t, level_prev in ((vp(0.9), vp(1.0)), (Level.flow(0.2), CLEAN)):
        out = eta_noise(eps, noise, level_t, level_prev, 1.0)
        assert torch.isfinite(out).all() and torch.equal(out, eps)
    # the flow analog is the posterior of the Gaussian path a z0 + s eps: eta = 1 at sigma = 1 draws fresh noise
    torch.testing.assert_close(eta_noise(eps, noise, Level.flow(1.0), Level.flow(0.5), 1.0), noise)
    # and its mixture keeps unit variance (weights w_det^2 + w_rand^2 = 1)
    mixed = eta_noise(torch.ones(1), torch.ones(1), Level.flow(0.6), Level.flow(0.3), 0.5)
    lt, lp = Level.flow(0.6), Level.flow(0.3)
    sigma2 = 0.25 * (lp.s / lt.s) ** 2 * (lt.s ** 2 - (lt.a / lp.a) ** 2 * lp.s ** 2)
    assert float(mixed) == pytest.approx(math.sqrt(1 - sigma2 / lp.s ** 2) + math.sqrt(sigma2) / lp.s, rel=1e-6)


def test_signal_fraction_is_alpha_bar_for_vp_and_the_analog_for_flow():
    assert Level.vp(0.3).alpha_bar == pytest.approx(0.3)
    assert Level.flow(0.25).alpha_bar == pytest.approx(0.75 ** 2 / (0.75 ** 2 + 0.25 ** 2))
    assert Level.flow(1.0).alpha_bar == 0.0 and CLEAN.alpha_bar == 1.0


def test_timesteps_match_diffusers_and_t_range():
    sched = sd15_scheduler()
    sched.set_timesteps(200)
    assert torch.equal(ddim_timesteps(200), sched.timesteps.long())
    assert ddim_timesteps(200)[:2].tolist() == [996, 991]
    ts = ddim_timesteps(100, t_range=(50, 950))
    assert ts.max() <= 950 and ts.min() >= 50 and torch.all(ts[:-1] > ts[1:])
    with pytest.raises(ValueError, match="nfe must be a positive integer"):
        ddim_timesteps(0)


def test_flow_schedule_is_the_schedulers_own():
    config = FlowMatchEulerDiscreteScheduler(shift=3.0).config
    ts, sigmas = flow_timesteps(12, config)
    ref = FlowMatchEulerDiscreteScheduler.from_config(config)
    ref.set_timesteps(12)
    torch.testing.assert_close(ts, ref.timesteps.double())
    steps = flow_schedule(ts, sigmas).steps
    assert [float(s["level_t"].s) for s in steps] == pytest.approx(ref.sigmas[:-1].tolist())
    assert steps[-1]["level_prev"] == CLEAN and steps[-1]["t_prev"].item() == -1
    kept = flow_schedule(ts, sigmas, t_range=(100, 900)).steps
    assert all(100 <= float(s["t"]) <= 900 for s in kept) and kept[-1]["level_prev"] == CLEAN


def _toy_eps(z, t):
    w = torch.randn(4, 4, 1, 1, generator=torch.Generator().manual_seed(1)) * 0.3
    return torch.tanh(torch.nn.functional.conv2d(z, w) + float(t) / 1000)      # a fixed toy "model"


def _diffusers_walk(scheduler, z: torch.Tensor, steps: int) -> torch.Tensor:
    """The reference: a diffusers scheduler's own ``step`` loop over ``steps`` timesteps with the toy model."""
    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps.tolist():
        z = scheduler.step(_toy_eps(z, t), t, z).prev_sample
    return z


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_inversion_equals_diffusers_inverse_scheduler(prediction_type):
    """Our inversion reads the model's output at the state's own level, as DDIMInverseScheduler does (eps and v)."""
    sched = sd15_scheduler(prediction_type)
    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    ref = _diffusers_walk(DDIMInverseScheduler.from_config(sched.config, set_alpha_to_one=True), z0, 10)
    schedule = vp_schedule(ddim_timesteps(10), sched.alphas_cumprod, float(sched.final_alpha_cumprod))
    fn = lambda z, t, level: denoised(_toy_eps(z, t), z, level, prediction_type)  # noqa: E731
    ours = ddim_invert(fn, z0, schedule.steps, schedule.inversion_start)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    psi, eps = ddim_invert(fn, z0, schedule.steps, schedule.inversion_start, return_pair=True)
    assert torch.equal(renoise(psi, eps, schedule.steps[0]["level_t"]), ours)


def test_flow_inversion_is_euler_and_sampling_undoes_it():
    """On a flow schedule the inversion is z <- z + (sigma_hi - sigma_lo) v(z, t_hi), step by step."""
    config = FlowMatchEulerDiscreteScheduler(shift=3.0).config
    schedule = flow_schedule(*flow_timesteps(6, config))
    z0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    ref, sigma_lo = z0, 0.0
    for step in reversed(schedule.steps):
        sigma = float(step["level_t"].s)
        ref = ref + (sigma - sigma_lo) * _toy_eps(ref, step["t"])
        sigma_lo = sigma
    fn = lambda z, t, level: denoised(_toy_eps(z, t), z, level, "flow")  # noqa: E731
    torch.testing.assert_close(ddim_invert(fn, z0, schedule.steps, schedule.inversion_start), ref)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddim_sample_equals_diffusers_ddim_scheduler(prediction_type):
    """Sampling (the raster an SVG is vectorized from) is DDIMScheduler.step with eta 0, eps and v."""
    sched = sd15_scheduler(prediction_type)
    z_T = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    ref = _diffusers_walk(DDIMScheduler.from_config(sched.config), z_T, 10)
    schedule = vp_schedule(ddim_timesteps(10), sched.alphas_cumprod, float(sched.final_alpha_cumprod))
    fn = lambda z, step: denoised(_toy_eps(z, step["t"]), z, step["level_t"], prediction_type)  # noqa: E731
    torch.testing.assert_close(ddim_sample(fn, z_T, schedule.steps), ref, rtol=1e-5, atol=1e-5)


def test_flow_sample_equals_diffusers_euler_scheduler():
    """On a flow schedule sampling is FlowMatchEulerDiscreteScheduler.step."""
    ref_sched = FlowMatchEulerDiscreteScheduler(shift=3.0)
    schedule = flow_schedule(*flow_timesteps(6, ref_sched.config))
    z_T = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(4))
    ref = _diffusers_walk(ref_sched, z_T, 6)
    fn = lambda z, step: denoised(_toy_eps(z, step["t"]), z, step["level_t"], "flow")  # noqa: E731
    torch.testing.assert_close(ddim_sample(fn, z_T, schedule.steps), ref, rtol=1e-5, atol=1e-5)


def test_official_pairing_shifts_alpha_bar_by_one():
    sched = sd15_scheduler()
    ts = ddim_timesteps(4)
    ac, final = sched.alphas_cumprod, float(sched.final_alpha_cumprod)
    ours, official = vp_schedule(ts, ac, final).steps, vp_schedule(ts, ac, final, "official")
    for a, b in zip(ours, official.steps):
        t = int(a["t"])
        assert a["level_t"] == vp(ac[t]) and b["level_t"] == vp(ac[t - 1])
    assert vp_schedule(ts, ac, final).inversion_start == CLEAN and official.inversion_start == vp(final)


def test_cfg_and_localized_eps():
    uc, c = torch.zeros(1, 1, 2, 2), torch.ones(2, 1, 2, 2) * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    guided = cfg(uc, c, 0.5)
    masks = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.0, 1.0], [0.0, 0.0]]]])
    out = localized_eps(uc, guided, masks)
    assert out.flatten().tolist() == [0.5, 1.5, 0.0, 0.0]
    assert torch.equal(localized_eps(uc, guided[:1], None), guided[:1])


def test_guidance_on_both_fields_equals_tweedie_of_the_guided_eps():
    """CFG and eq. (19) are affine with weights summing to one: applied to z0 they give z0_hat of the guided eps."""
    g = torch.Generator().manual_seed(6)
    z = torch.randn(1, 4, 4, 4, generator=g)
    level = vp(0.4)
    rows = [denoised(torch.randn(1, 4, 4, 4, generator=g), z, level, "epsilon") for _ in range(3)]
    uc, c = rows[0], Denoised(torch.cat([rows[1].eps, rows[2].eps]), torch.cat([rows[1].z0, rows[2].z0]))
    masks = torch.zeros(2, 1, 4, 4)
    masks[0, :, :2], masks[1, :, 2:, :2] = 1, 1
    fn = lambda u, c_: localized_eps(u, cfg(u.expand(2, -1, -1, -1), c_, 2.5), masks, torch.tensor([0, 0]))  # noqa
    guided = Denoised.combine(fn, uc, c)
    torch.testing.assert_close(guided.z0, z0_hat(z, guided.eps, level), rtol=1e-5, atol=1e-5)


def test_schedule_loader_state_roundtrip():
    sched = sd15_scheduler()
    steps = vp_schedule(ddim_timesteps(5), sched.alphas_cumprod, float(sched.final_alpha_cumprod)).steps
    loader = ReverseSchedule(steps)
    it = iter(loader)
    first = [next(it)["t"].item() for _ in range(2)]
    state = loader.state_dict()
    resumed = ReverseSchedule(steps)
    resumed.load_state_dict(state)
    rest = [b["t"].item() for b in resumed]
    assert first + rest == ddim_timesteps(5).tolist()
    last = reverse_steps([5, 3], [vp(0.2), vp(0.4)], vp(0.5))[-1]
    assert last["t_prev"].item() == -1 and last["alpha_bar_prev"].item() == pytest.approx(0.5)


def test_noise_depends_only_on_seed_purpose_step_and_sample():
    a = randn((3,), 1, "eta", 4)
    assert torch.equal(a, randn((3,), 1, "eta", 4))
    assert not torch.equal(a, randn((3,), 1, "eta", 5))
    assert not torch.equal(a, randn((3,), 2, "eta", 4))
    assert not torch.equal(a, randn((3,), 1, "eta", 4, sample="other"))


def test_no_two_purposes_share_a_stream():
    """Regression (review of Core v2): the SVG start circles and the starting eps_tilde were both (seed, -1, name),
    inpainting's DS renoising noise and eq. 5's eta-noise both (seed, step, name)."""
    draws = {p: randn((8,), 0, p, step, "img") for p in PURPOSES for step in (-1, 3)}
    values = list(draws.values())
    assert all(not torch.equal(x, y) for i, x in enumerate(values) for y in values[i + 1:])
    with pytest.raises(ValueError, match="unknown noise purpose 'noise'"):
        randn((1,), 0, "noise")
