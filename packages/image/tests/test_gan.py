"""The generator: a training step, sample shapes, the demodulation invariant, ADA, EMA and resuming."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.image import gan
from privaudit.image.networks import Discriminator, Generator, modulated_conv2d

SMALL = gan.GanSettings(steps=3, batch_size=8, z_dim=16, w_dim=16, channel_base=64, channel_max=16)


def _data(n=40, res=8):
    torch.manual_seed(0)
    return torch.rand(n, 1, res, res) * 2 - 1, torch.randint(0, 10, (n,))


def test_generator_trains_a_step_and_samples_the_right_shape():
    images, labels = _data(res=16)
    g0, _ = gan.build_networks(SMALL, 16, 1, 10, seed=0)
    settings = gan.GanSettings(**{**SMALL.__dict__, "steps": 1, "r1_interval": 1})
    generator, summary = gan.train_gan(images, labels, 10, settings, seed=0)
    assert summary["steps"] == 1
    moved = [
        not torch.equal(a, b) for a, b in zip(g0.parameters(), generator.parameters(), strict=True)
    ]
    assert any(moved), "one step must change the EMA generator"
    out = gan.sample(generator, torch.tensor([0, 1, 2, 9, 9]), seed=3)
    assert out.shape == (5, 1, 16, 16)
    assert out.min() >= -1 and out.max() <= 1 and torch.isfinite(out).all()
    torch.testing.assert_close(out, gan.sample(generator, torch.tensor([0, 1, 2, 9, 9]), seed=3))


@settings(max_examples=6, deadline=None)
@given(scale=st.floats(0.1, 10.0), seed=st.integers(0, 2**16))
def test_demodulation_makes_the_output_independent_of_the_style_scale(scale, seed):
    # Demodulation divides each output filter by its norm after styling, so multiplying every
    # style by one constant (per sample) leaves the output unchanged; without it the output scales.
    torch.manual_seed(seed)
    weight, styles, x = torch.randn(5, 3, 3, 3), torch.rand(2, 3) + 0.1, torch.randn(2, 3, 6, 6)
    torch.testing.assert_close(
        modulated_conv2d(x, weight, styles * scale),
        modulated_conv2d(x, weight, styles),
        rtol=1e-4,
        atol=1e-5,
    )
    torch.testing.assert_close(
        modulated_conv2d(x, weight, styles * scale, demodulate=False),
        modulated_conv2d(x, weight, styles, demodulate=False) * scale,
        rtol=1e-4,
        atol=1e-4,
    )


@settings(max_examples=4, deadline=None)
@given(
    channels=st.sampled_from([1, 3]),
    resolution=st.sampled_from([8, 16, 32]),
    seed=st.integers(0, 2**16),
)
def test_truncation_to_the_average_w_makes_every_latent_give_the_class_image(
    channels, resolution, seed
):
    # psi = 0 replaces each mapped latent by the tracked average: the image no longer depends on z,
    # only on the class (through the mapping's class embedding it is averaged out too) and the
    # constant noise; psi = 1 keeps z's influence. The discriminator reads every such image.
    torch.manual_seed(seed)
    g = Generator(
        z_dim=8,
        c_dim=3,
        w_dim=8,
        resolution=resolution,
        channels=channels,
        channel_base=64,
        channel_max=8,
    )
    d = Discriminator(
        c_dim=3, resolution=resolution, channels=channels, channel_base=64, channel_max=8
    )
    c = torch.eye(3)[[0, 0]]
    g(
        torch.randn(64, 8), torch.eye(3)[torch.randint(0, 3, (64,))], update_w_avg=True
    )  # track w_avg
    with torch.no_grad():
        z = torch.randn(2, 8)
        same = g(z, c, truncation_psi=0.0, noise_mode="const")
        free = g(z, c, truncation_psi=1.0, noise_mode="const")
    torch.testing.assert_close(same[0], same[1])
    assert not torch.allclose(free[0], free[1])
    assert same.shape == (2, channels, resolution, resolution) and torch.isfinite(d(same, c)).all()


def test_ada_probability_rises_when_the_discriminator_overfits():
    images, labels = _data()
    # ada_kimg tiny: p moves by a whole batch's worth each adjustment; a fresh D says "real" to reals often
    settings = gan.GanSettings(
        **{**SMALL.__dict__, "steps": 8, "ada_target": -1.0, "ada_interval": 2, "ada_kimg": 0.1}
    )
    _, summary = gan.train_gan(images, labels, 10, settings, seed=0)
    assert summary["ada_p"] > 0.5
    augment = gan.AdaptiveAugment()
    augment.p.fill_(1.0)
    out = augment(images[:4])
    assert out.shape == images[:4].shape and not torch.equal(out, images[:4])


@pytest.mark.slow
def test_interrupted_training_resumes_from_the_checkpoint(tmp_path):
    images, labels = _data()
    checkpoint = tmp_path / "g.pt"
    settings = gan.GanSettings(**{**SMALL.__dict__, "steps": 4})

    class Stop(Exception):
        pass

    def stop_at_2(step):
        if step == 2:
            raise Stop

    try:
        gan.train_gan(
            images,
            labels,
            10,
            settings,
            seed=0,
            checkpoint=checkpoint,
            checkpoint_every=2,
            on_step=stop_at_2,
        )
    except Stop:
        pass
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    steps_seen = []
    _, summary = gan.train_gan(
        images, labels, 10, settings, seed=0, checkpoint=checkpoint, on_step=steps_seen.append
    )
    assert steps_seen == [3, 4] and summary["steps"] == 4
    resumed = gan.generator_from_state(checkpoint, settings, 8, 1, 10)
    # an uninterrupted run draws the same batches, latents, noise and ADA statistics: same weights
    uninterrupted, _ = gan.train_gan(images, labels, 10, settings, seed=0)
    for (name, a), b in zip(
        resumed.state_dict().items(), uninterrupted.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.gpu
def test_cuda_training_resumes_a_cpu_checkpoint_and_samples_to_the_cpu(tmp_path):
    images, labels = _data(res=16)
    checkpoint = tmp_path / "gan.pt"
    # ADA p jumps to 1 after the first step, so the CUDA steps take R1 through the augmentations' warp
    settings = gan.GanSettings(
        **{
            **SMALL.__dict__,
            "steps": 2,
            "r1_interval": 1,
            "ada_target": -1.0,
            "ada_interval": 1,
            "ada_kimg": 0.001,
        }
    )
    _, first = gan.train_gan(
        images, labels, 10, settings, seed=0, checkpoint=checkpoint, checkpoint_every=1
    )
    assert first["ada_p"] == 1.0
    longer = gan.GanSettings(**{**settings.__dict__, "steps": 4})
    generator, summary = gan.train_gan(
        images, labels, 10, longer, seed=0, checkpoint=checkpoint, checkpoint_every=1, device="cuda"
    )
    assert summary["steps"] == 4 and generator.const.is_cuda
    assert summary["ada_p"] == 1.0
    out = gan.sample(generator, torch.tensor([0, 1, 9]), seed=3)
    assert out.device.type == "cpu" and out.shape == (3, 1, 16, 16) and torch.isfinite(out).all()
    resumed_on_cpu = gan.generator_from_state(checkpoint, longer, 16, 1, 10)
    # cuDNN may convolve in TF32 on the GPU: agreement to about 1e-3 of the [-1, 1] range
    torch.testing.assert_close(
        gan.sample(resumed_on_cpu, torch.tensor([0, 1, 9]), seed=3), out, rtol=0, atol=2e-2
    )


def _run_chooser(chooser, seconds_at, steps):
    """Drive a chooser with step times given by seconds_at(step, threads); the counts it used."""
    used = []
    for step in range(steps):
        threads = chooser.threads()
        used.append(threads)
        chooser.record(step, seconds_at(step, threads))
    return used


def test_thread_chooser_keeps_the_faster_count_and_moves_when_the_machine_gets_busy():
    # two idle cores: 2 threads are faster; from step 100 another process takes a core and
    # 2 threads stall (0.15 s -> 2 s a step) while 1 thread slows only a little
    def seconds_at(step, threads):
        busy = step >= 100
        return {1: 0.30 if busy else 0.25, 2: 2.0 if busy else 0.15}[threads]

    chooser = gan.ThreadChooser([1, 2], trial_steps=5, recheck_every=1000)
    used = _run_chooser(chooser, seconds_at, 200)
    assert used[:10] == [1] * 5 + [2] * 5  # the trial
    assert set(used[10:100]) == {2}
    # the slowdown (median of the last 5 steps over twice the trial's) starts a new trial at once
    assert used[-50:] == [1] * 50
    assert [h["threads"] for h in chooser.history] == [2, 1]
    assert chooser.history[1]["trial"] == {"1": 0.3, "2": 2.0}
    assert (
        sum(1 for u in used[100:] if u == 2) <= 5 + 5
    )  # at most the detection window and one trial


def test_a_count_that_stalls_costs_one_trial_step_not_all_of_them():
    # beside a busy process 2 threads stall at every barrier (measured: 5.3 s a step against 0.16 s)
    chooser = gan.ThreadChooser([1, 2], trial_steps=5, recheck_every=20)
    used = _run_chooser(chooser, lambda step, threads: {1: 0.16, 2: 5.3}[threads], 60)
    assert used[:6] == [1] * 5 + [2] and set(used[6:26]) == {1}
    assert used[26:32] == [1] * 5 + [2]  # the periodic recheck: again one step at 2 threads
    assert chooser.history[0]["trial"] == {"1": 0.16, "2": 5.3}


def test_thread_chooser_rechecks_periodically_and_one_candidate_needs_no_trial():
    chooser = gan.ThreadChooser([1, 2], trial_steps=3, recheck_every=20)
    used = _run_chooser(chooser, lambda step, threads: 0.1 * threads, 60)
    assert (
        used[:6] == [1, 1, 1, 2, 2, 2]
        and used[6:26] == [1] * 20
        and used[26:32] == [1, 1, 1, 2, 2, 2]
    )
    only = gan.ThreadChooser([1, 1])
    assert _run_chooser(only, lambda step, threads: 1.0, 5) == [1] * 5
    assert only.history == [{"from_step": 0, "threads": 1}]
    auto = gan.ThreadChooser.auto()
    assert 1 in auto.candidates and max(auto.candidates) == gan.usable_cores()


def test_training_under_the_chooser_draws_the_same_batches_and_records_its_choice():
    images, labels = _data(res=8)
    settings = gan.GanSettings(**{**SMALL.__dict__, "steps": 4})
    torch.set_num_threads(1)
    fixed, _ = gan.train_gan(images, labels, 10, settings, seed=0)
    # a chooser whose only candidate is the fixed count trains exactly the fixed-count generator
    chosen, summary = gan.train_gan(
        images, labels, 10, settings, seed=0, threads=gan.ThreadChooser([1])
    )
    for a, b in zip(fixed.parameters(), chosen.parameters(), strict=True):
        assert torch.equal(a, b)
    assert summary["threads"] == [{"from_step": 0, "threads": 1}]
    _, summary = gan.train_gan(
        images, labels, 10, settings, seed=0, threads=gan.ThreadChooser([1, 2], trial_steps=1)
    )
    assert summary["threads"][0]["from_step"] == 2 and set(summary["threads"][0]["trial"]) == {
        "1",
        "2",
    }
    torch.set_num_threads(1)
