"""Shadow heads, their store, the reconstructor and the min-MSE evaluation, on tiny sizes."""

import numpy as np
import pytest
import torch
from privaudit.attacks.reconstruction import evaluation, shadow
from privaudit.attacks.reconstruction.heads import (
    DPSchedule,
    HeadConfig,
    HeadPrivacy,
    head_module,
    initial_heads,
    train_head_one,
    train_heads,
)
from privaudit.attacks.reconstruction.reconstructor import (
    HeadBatches,
    Reconstructor,
    ReconstructorConfig,
    reconstruction_loss,
    train_reconstructor,
)
from privaudit.attacks.reconstruction.store import HeadStore, StoreLayout
from privaudit.dp.accounting import epsilon_spent
from sklearn.metrics import roc_auc_score
from torch.func import functional_call, grad, vmap

CLASSES = 10


def _data(heads: int, class_size: int = 1, features: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(heads, CLASSES * class_size, features, generator=g) * 2
    labels = torch.arange(CLASSES).repeat_interleave(class_size).expand(heads, -1)
    positive = torch.randint(0, CLASSES, (heads,), generator=g)
    return x, labels, positive


@pytest.mark.parametrize(("kind", "class_size"), [("linear", 1), ("linear", 2), ("mlp", 1)])
def test_batched_heads_equal_heads_trained_one_by_one_with_torch_sgd(kind, class_size):
    config = HeadConfig(kind=kind)
    x, labels, positive = _data(5, class_size)
    initial = initial_heads(5, x.shape[2], CLASSES, config, torch.Generator().manual_seed(1))
    epochs = config.epochs_for(class_size)
    batched = train_heads(initial, x, labels, CLASSES, config, epochs=epochs, positive=positive)
    for m in range(5):
        one = train_head_one(
            initial[m], x[m], labels[m], CLASSES, config, epochs=epochs, positive=int(positive[m])
        )
        torch.testing.assert_close(batched[m], one, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(batched, initial)


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_dp_step_clips_per_example_gradients_as_torch_func_computes_them(kind):
    config = HeadConfig(kind=kind, weight_decay=0.0, init_std=0.3)
    x, labels, positive = _data(4, 2)
    initial = initial_heads(4, x.shape[2], CLASSES, config, torch.Generator().manual_seed(2))
    step = DPSchedule(
        noise_multiplier=0.0, sample_rate=0.6, steps=1, max_grad_norm=0.5, delta=0.1, epsilon=1.0
    )
    after = train_heads(initial, x, labels, CLASSES, config, epochs=1, positive=positive, dp=step,
                        sampling=torch.Generator().manual_seed(3))  # fmt: skip
    mask = torch.rand(4, x.shape[1], generator=torch.Generator().manual_seed(3)) < step.sample_rate
    module = head_module(config, x.shape[2], CLASSES)
    names = [name for name, _ in module.named_parameters()]

    def loss(flat, xi, yi, pos):
        params = dict(
            zip(names, torch.split(flat, [p.numel() for p in module.parameters()]), strict=True)
        )
        params = {
            n: v.view_as(p) for (n, v), p in zip(params.items(), module.parameters(), strict=True)
        }
        out = functional_call(module, params, (xi.unsqueeze(0),))
        if kind == "linear":
            return torch.nn.functional.cross_entropy(out, yi.unsqueeze(0))
        target = (yi == pos).float().view(1, 1)
        return torch.nn.functional.binary_cross_entropy_with_logits(
            out, target, pos_weight=torch.tensor([9.0])
        )

    for m in range(4):
        per_example = vmap(grad(loss), in_dims=(None, 0, 0, None))(
            initial[m], x[m], labels[m], positive[m]
        )
        norms = per_example.norm(dim=1)
        clipped = per_example * (step.max_grad_norm / (norms + 1e-6)).clamp(max=1).unsqueeze(1)
        expected = initial[m] - config.learning_rate * (clipped * mask[m].unsqueeze(1)).sum(0) / (
            step.sample_rate * x.shape[1]
        )
        torch.testing.assert_close(after[m], expected, rtol=1e-4, atol=1e-6)


def test_dp_noise_has_the_accounted_scale_and_no_seed():
    config = HeadConfig(init_std=0.0, weight_decay=0.0, lr=1.0)
    heads, features = 2000, 16
    x = torch.zeros(
        heads, CLASSES, features
    )  # zero features: the weights' gradient is zero, the step is noise
    labels = torch.arange(CLASSES).expand(heads, -1)
    initial = initial_heads(heads, features, CLASSES, config, torch.Generator().manual_seed(0))
    step = DPSchedule(
        noise_multiplier=1.3, sample_rate=0.9, steps=1, max_grad_norm=4.0, delta=0.08, epsilon=5.0
    )

    def run():
        out = train_heads(
            initial,
            x,
            labels,
            CLASSES,
            config,
            epochs=1,
            dp=step,
            sampling=torch.Generator().manual_seed(5),
        )
        return out[:, : CLASSES * features]

    first, second = run(), run()
    expected_std = step.noise_multiplier * step.max_grad_norm / (step.sample_rate * CLASSES)
    assert abs(first.std().item() / expected_std - 1) < 0.02
    assert abs(first.mean().item()) < 0.02 * expected_std
    # the same run seed and sampling stream, yet independent noise: it never comes from a seed
    assert abs(torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1].item()) < 0.02


def test_dp_accounting_matches_the_papers_table_and_the_target():
    # the authors' Opacus run (batch N - 1 = q 0.5, 2 steps x 32 epochs, PRV): eps 10 <-> noise 1.23
    assert epsilon_spent(1.23, 0.5, 64, 10**-1.1, "prv") == pytest.approx(10.0, rel=0.01)
    schedule = HeadPrivacy(epsilon=10, accountant="rdp").schedule(examples=10, epochs=32)
    assert schedule.sample_rate == pytest.approx(0.9) and schedule.delta == pytest.approx(10**-1.1)
    assert schedule.steps == 32 and 9.8 < schedule.epsilon <= 10.0
    assert epsilon_spent(schedule.noise_multiplier, 0.9, 32, 10**-1.1, "rdp") <= 10.0


def test_balanced_sets_hold_distinct_images_of_every_class():
    labels = np.repeat(np.arange(CLASSES), 7)
    sets = shadow.balanced_sets(labels, CLASSES, 2, 20, np.random.default_rng(0))
    assert sets.shape == (20, 20)
    assert (labels[sets] == np.repeat(np.arange(CLASSES), 2)).all()
    assert all(len(set(row)) == 20 for row in sets)


def _job(kind="linear", dp=None):
    return shadow.ShadowJob(
        HeadConfig(kind=kind, epochs=3), CLASSES, 1, seed=4, population=0, dp=dp
    )


def _pool(size=60, features=8):
    return torch.randn(size, features, generator=torch.Generator().manual_seed(9)), np.arange(
        size
    ) % CLASSES


def test_store_statistics_are_numpys(tmp_path):
    features, labels = _pool()
    store = HeadStore(tmp_path, StoreLayout(70, 32, 90, 10))
    shadow.train_shadow_heads(store, features, labels, _job(), progress=False)
    weights = np.concatenate([store.load(c)[0] for c in range(3)]).astype(np.float64)
    stats = store.stats()
    np.testing.assert_allclose(stats.mean, weights.mean(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(stats.std, weights.std(0), rtol=1e-6)
    np.testing.assert_allclose(
        stats.correlation, np.corrcoef(weights[:, stats.keep], rowvar=False), atol=1e-8
    )
    assert stats.keep.all()


def test_interrupted_head_training_resumes_without_retraining_finished_chunks(
    tmp_path, monkeypatch
):
    features, labels = _pool()
    layout = StoreLayout(100, 25, 90, 10)
    reference = HeadStore(tmp_path / "reference", layout)
    shadow.train_shadow_heads(reference, features, labels, _job(), progress=False)

    original, calls = shadow.train_chunk, []

    def interrupted(features, labels, job, chunk, size):
        calls.append(chunk)
        if chunk == 2:
            raise KeyboardInterrupt
        return original(features, labels, job, chunk, size)

    store = HeadStore(tmp_path / "run", layout)
    monkeypatch.setattr(shadow, "train_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        shadow.train_shadow_heads(store, features, labels, _job(), progress=False)
    assert store.missing() == [2, 3]
    stamps = {p: p.stat().st_mtime_ns for p in store.directory.glob("chunk-*")}
    calls.clear()
    monkeypatch.setattr(shadow, "train_chunk", lambda *a: (calls.append(a[3]), original(*a))[1])
    assert shadow.train_shadow_heads(store, features, labels, _job(), progress=False) == [2, 3]
    assert calls == [2, 3] and store.missing() == []
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    for chunk in range(4):  # the resumed store holds what an uninterrupted run trained
        for got, want in zip(store.load(chunk), reference.load(chunk), strict=True):
            np.testing.assert_array_equal(got, want)


def test_min_mse_and_rates_on_a_hand_made_example():
    targets = torch.zeros(1, 2, 2, 1, 2, 2)
    targets[0, 0, 1] = 1.0  # group 0: an all-zero and an all-one image
    targets[0, 1] = 0.5  # group 1: two images of 0.5
    rebuilt = torch.zeros(1, 2, 1, 2, 2)
    rebuilt[0, 0] = 0.9  # nearest is the all-one image: MSE 0.01
    rebuilt[0, 1, 0, 0, 0] = (
        0.5 + 2.0
    )  # one pixel off by 2 from 0.5, the rest by 0.5: (4 + 3 x 0.25) / 4
    np.testing.assert_allclose(evaluation.min_mse(rebuilt, targets), [[0.01, 1.1875]], rtol=1e-6)

    h0 = np.array([0.01, 0.03, 0.05, 0.2, 0.5])
    h1 = np.array([0.04, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0])
    rates = evaluation.reconstruction_rates(h0, h1, threshold=0.05, fprs=(0.125, 0.01))
    assert rates["tpr_at_threshold"] == pytest.approx(3 / 5) and rates[
        "fpr_at_threshold"
    ] == pytest.approx(1 / 8)
    # FPR <= 1/8 lets one H1 value (0.04) under tau, so tau < 0.3: four H0 values; FPR 0: tau < 0.04, two
    assert rates["tpr_at_fpr"] == {"0.125": pytest.approx(4 / 5), "0.01": pytest.approx(2 / 5)}
    labels = np.r_[np.ones(5), np.zeros(8)]
    assert rates["auc"] == pytest.approx(roc_auc_score(labels, -np.r_[h0, h1]))


def test_h1_weights_follow_the_correlation():
    correlation = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 1.0]])
    draws = evaluation.h1_weights(correlation, 40000, np.random.default_rng(0))
    np.testing.assert_allclose(np.cov(draws, rowvar=False), correlation, atol=0.03)


def test_reconstruction_loss_is_mse_mae_and_a_soft_minimum_over_the_class():
    out = torch.zeros(2, 1, 4, 4)
    near, far = torch.full((1, 4, 4), 0.1), torch.full((1, 4, 4), 1.0)
    single = reconstruction_loss(out, far.expand(2, 1, 1, 4, 4))
    assert single.item() == pytest.approx((1.0 + 1.0) / 2)
    pair = torch.stack([near, far]).expand(2, 2, 1, 4, 4)
    assert reconstruction_loss(out, pair, softmin_alpha=1000).item() == pytest.approx(
        (0.01 + 0.1) / 2, rel=1e-4
    )
    assert reconstruction_loss(out, pair, softmin_alpha=1e-6).item() == pytest.approx(
        (0.055 + 1.0) / 2, rel=1e-4
    )


@pytest.mark.parametrize("resolution", [8, 32])
def test_reconstructor_maps_inputs_to_images_in_range(resolution):
    model = Reconstructor(inputs=20, width=4, channels=1, resolution=resolution).eval()
    out = model(torch.randn(3, 20) * 10)
    assert out.shape == (3, 1, resolution, resolution) and out.abs().max() <= 1


def test_interrupted_reconstructor_training_resumes_where_it_stopped(tmp_path):
    features, labels = _pool()
    store = HeadStore(tmp_path / "heads", StoreLayout(64, 32, 90, 10))
    shadow.train_shadow_heads(store, features, labels, _job(), progress=False)
    images = torch.rand(60, 1, 8, 8) * 2 - 1
    batches = HeadBatches(store, store.stats(), images, CLASSES, 1, conditional=True)
    config = ReconstructorConfig(width=4, steps=6, batch_size=8, checkpoint_every=3)
    whole, losses = train_reconstructor(
        batches, config, seed=0, checkpoint=tmp_path / "a.pt", progress=False
    )
    train_reconstructor(batches, ReconstructorConfig(width=4, steps=3, batch_size=8, checkpoint_every=3),
                        seed=0, checkpoint=tmp_path / "b.pt", progress=False)  # fmt: skip
    resumed, resumed_losses = train_reconstructor(
        batches, config, seed=0, checkpoint=tmp_path / "b.pt", progress=False
    )
    assert resumed_losses == pytest.approx(losses)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_ray_local_cluster_trains_the_same_heads(tmp_path):
    ray = pytest.importorskip("ray")
    features, labels = _pool()
    layout = StoreLayout(48, 16, 90, 10)
    local, on_ray = HeadStore(tmp_path / "local", layout), HeadStore(tmp_path / "ray", layout)
    shadow.train_shadow_heads(local, features, labels, _job(), progress=False)
    try:
        trained = shadow.train_shadow_heads(
            on_ray, features, labels, _job(), ray_address="local", progress=False
        )
    finally:
        ray.shutdown()
    assert trained == [0, 1, 2]
    for chunk in range(3):  # a Ray worker trains exactly the heads a local process would
        for got, want in zip(on_ray.load(chunk), local.load(chunk), strict=True):
            np.testing.assert_array_equal(got, want)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_heads_trained_on_cuda_match_the_cpu(kind):
    config = HeadConfig(kind=kind)
    x, labels, positive = _data(64)
    initial = initial_heads(64, x.shape[2], CLASSES, config, torch.Generator().manual_seed(1))
    cpu = train_heads(initial, x, labels, CLASSES, config, epochs=32, positive=positive)
    cuda = train_heads(
        initial.cuda(),
        x.cuda(),
        labels.cuda(),
        CLASSES,
        config,
        epochs=32,
        positive=positive.cuda(),
    )
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-4, atol=1e-5)
    # DP on the device: Poisson masks from a CUDA generator, noise of the accounted scale
    step = DPSchedule(
        noise_multiplier=1.3, sample_rate=0.9, steps=1, max_grad_norm=4.0, delta=0.08, epsilon=5.0
    )
    zero = HeadConfig(kind=kind, init_std=0.0, weight_decay=0.0, lr=1.0)
    flat = initial_heads(2000, 16, CLASSES, zero, torch.Generator(device="cuda").manual_seed(0))
    noisy = train_heads(flat, torch.zeros(2000, CLASSES, 16, device="cuda"), torch.arange(CLASSES, device="cuda").expand(2000, -1),
                        CLASSES, zero, epochs=1, positive=torch.zeros(2000, dtype=torch.long, device="cuda"), dp=step,
                        sampling=torch.Generator(device="cuda").manual_seed(5))  # fmt: skip
    first_layer = noisy[:, : (CLASSES if kind == "linear" else zero.hidden) * 16]
    # zero features: the first layer's step is the noise alone
    expected = step.noise_multiplier * step.max_grad_norm / (step.sample_rate * CLASSES)
    assert abs(first_layer.std().item() / expected - 1) < 0.02
