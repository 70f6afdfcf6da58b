import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from privaudit.attacks.attacks import ATTACKS, AttackInputs, build_attack
from privaudit.attacks.data import load_images, split_indices
from privaudit.attacks.mia import model_signals
from privaudit.attacks.models import ModelSpec, build_model
from privaudit.attacks.references import ReferenceStore, in_out_design, train_reference_models
from privaudit.attacks.signals import Signals
from privaudit.attacks.targets import ClassifierTarget
from privaudit.attacks.training import TrainConfig, train_model, train_models_batched
from privaudit.core.errors import InputError
from sklearn.metrics import roc_auc_score

SPEC = ModelSpec(kind="mlp", input_shape=(1, 8, 8), num_classes=10, width=64)
OVERFIT = TrainConfig(epochs=60, batch_size=32, lr=0.1)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 8), st.integers(1, 60), st.integers(0, 2**32 - 1))
def test_in_out_design_is_balanced(pairs, half_points, seed):
    membership = in_out_design(2 * half_points, 2 * pairs, seed)
    assert (membership.sum(axis=0) == pairs).all()  # each point in exactly half the models
    assert (membership.sum(axis=1) == half_points).all()  # each model holds half the points


def test_in_out_design_rejects_odd_counts():
    with pytest.raises(InputError, match="even number"):
        in_out_design(10, 3, 0)


def test_batched_training_matches_one_by_one():
    images, labels = load_images("digits")
    index_sets = np.stack(
        [np.random.default_rng(s).choice(300, 96, replace=False) for s in range(3)]
    )
    config = TrainConfig(epochs=2, batch_size=16, lr=0.1)
    states, batched_losses = train_models_batched(
        [build_model(SPEC, s) for s in (7, 8, 9)], images, labels, index_sets, config, [7, 8, 9]
    )
    for r, seed in enumerate((7, 8, 9)):
        model = build_model(SPEC, seed)
        losses = train_model(model, images, labels, index_sets[r], config, seed)
        np.testing.assert_allclose(batched_losses[r], losses, rtol=1e-4, atol=1e-5)
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(states[r][name], tensor, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
def test_cuda_batched_training_matches_one_by_one_and_queries_come_back_to_the_cpu():
    images, labels = (t.cuda() for t in load_images("digits"))
    index_sets = np.stack(
        [np.random.default_rng(s).choice(300, 96, replace=False) for s in range(3)]
    )
    config = TrainConfig(epochs=2, batch_size=16, lr=0.1)
    models = [build_model(SPEC, s).cuda() for s in (7, 8, 9)]
    states, batched_losses = train_models_batched(
        models, images, labels, index_sets, config, [7, 8, 9]
    )
    model = build_model(SPEC, 7).cuda()
    losses = train_model(model, images, labels, index_sets[0], config, 7)
    np.testing.assert_allclose(batched_losses[0], losses, rtol=1e-3, atol=1e-4)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(states[0][name], tensor, rtol=1e-3, atol=1e-4)
    cpu_inputs = images[:50].cpu()
    on_gpu = ClassifierTarget(model).logits(cpu_inputs)
    on_cpu = ClassifierTarget(model.cpu()).logits(cpu_inputs)
    assert on_gpu.device.type == "cpu"
    torch.testing.assert_close(on_gpu, on_cpu, rtol=1e-3, atol=1e-4)


def test_killed_run_resumes_without_retraining(tmp_path):
    images, labels = load_images("digits")
    membership = in_out_design(64, 4, seed=1)
    store = ReferenceStore.create(tmp_path / "refs", SPEC, membership)
    config = TrainConfig(epochs=1, batch_size=16)

    def killed_after_two(index):
        if index == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_reference_models(
            store,
            images[:64],
            labels[:64],
            config,
            0,
            models_per_group=2,
            on_saved=killed_after_two,
            progress=False,
        )
    assert store.finished() == [0, 1]
    saved = [store.path(i).read_bytes() for i in (0, 1)]
    resumed = ReferenceStore.create(tmp_path / "refs", SPEC, membership)
    assert train_reference_models(
        resumed, images[:64], labels[:64], config, 0, models_per_group=2, progress=False
    ) == [2, 3]
    assert [store.path(i).read_bytes() for i in (0, 1)] == saved
    assert (
        train_reference_models(resumed, images[:64], labels[:64], config, 0, progress=False) == []
    )
    with pytest.raises(InputError, match="different in/out design"):
        ReferenceStore.create(tmp_path / "refs", SPEC, in_out_design(64, 4, seed=2))


def test_checkpoints_trained_elsewhere(tmp_path):
    for i in range(2):
        torch.save(build_model(SPEC, i).state_dict(), tmp_path / f"m{i}.pt")
    np.savetxt(tmp_path / "membership.csv", [[1, 0, 1, 0], [0, 1, 0, 1]], delimiter=",", fmt="%d")
    store = ReferenceStore.from_checkpoints(tmp_path, tmp_path / "membership.csv", SPEC)
    assert store.membership.tolist() == [[True, False, True, False], [False, True, False, True]]
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(store.load(1)(x), build_model(SPEC, 1)(x))
    np.savetxt(tmp_path / "bad.csv", [[1, 0, 1, 0]], delimiter=",", fmt="%d")
    with pytest.raises(InputError, match="one row per checkpoint"):
        ReferenceStore.from_checkpoints(tmp_path, tmp_path / "bad.csv", SPEC)


@pytest.fixture(scope="module")
def overfit_world(tmp_path_factory):
    """8 references and two targets on digits: one trained on half the audit points, one on
    points outside the audit set (so it saw neither members nor non-members). Digits generalise
    so well that clean members barely stand out (LOSS AUC ~0.56), so a fifth of the audit labels
    are flipped: a model that overfits must memorise those, as it would mislabelled canaries."""
    images, labels = load_images("digits")
    audit_idx, population_idx, outside_idx = split_indices(len(images), (400, 300, 200), seed=0)
    rng = np.random.default_rng(1)
    audit_labels = labels[audit_idx].clone()
    flip = torch.as_tensor(rng.random(400) < 0.2)
    audit_labels[flip] = (
        audit_labels[flip] + torch.as_tensor(rng.integers(1, 10, int(flip.sum())))
    ) % 10
    audit, population = (
        (images[audit_idx], audit_labels),
        (images[population_idx], labels[population_idx]),
    )
    root = tmp_path_factory.mktemp("world")
    references = ReferenceStore.create(root / "refs", SPEC, in_out_design(400, 8, seed=3))
    train_reference_models(references, *audit, OVERFIT, seed=4, progress=False)
    target_in = in_out_design(400, 2, seed=5)[0]
    target = build_model(SPEC, 6)
    train_model(target, *audit, np.flatnonzero(target_in), OVERFIT, 6)
    outsider = build_model(SPEC, 7)
    train_model(outsider, images, labels, outside_idx, OVERFIT, 7)
    reference_audit, reference_population = model_signals(
        references, lambda x: [x], audit, population
    )

    def inputs_for(model):
        query = ClassifierTarget(model)
        return AttackInputs(
            query.signals(*audit),
            reference_audit,
            references.membership,
            query.signals(*population),
            reference_population,
        )

    return target_in, inputs_for(target), inputs_for(outsider)


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_attack_separates_members_of_an_overfit_model(overfit_world, name):
    target_in, trained, outsider = overfit_world
    assert roc_auc_score(target_in, build_attack(name).score(trained)) > 0.6
    # the outsider saw neither side: the labels are a coin flip for it
    assert abs(roc_auc_score(target_in, build_attack(name).score(outsider)) - 0.5) < 0.08


def test_signals_stack_keeps_model_axis():
    stacked = Signals.stack([Signals(np.zeros((2, 1)), np.ones((2, 1)), np.zeros((2, 1)))] * 3)
    assert stacked.loss.shape == (3, 2, 1)


@pytest.mark.slow
def test_ray_local_cluster_trains_the_same_models(tmp_path):
    ray = pytest.importorskip("ray")
    images, labels = load_images("digits")
    membership = in_out_design(64, 4, seed=1)
    config = TrainConfig(epochs=1, batch_size=16)
    local = ReferenceStore.create(tmp_path / "local", SPEC, membership)
    train_reference_models(
        local, images[:64], labels[:64], config, 0, models_per_group=2, progress=False
    )
    on_ray = ReferenceStore.create(tmp_path / "ray", SPEC, membership)
    try:
        trained = train_reference_models(
            on_ray, images[:64], labels[:64], config, 0, models_per_group=2,
            ray_address="local", progress=False,
        )  # fmt: skip
    finally:
        ray.shutdown()
    assert trained == [0, 1, 2, 3]
    x = images[64:80]
    for index in range(4):  # a Ray worker trains exactly the model a local process would
        torch.testing.assert_close(on_ray.load(index)(x), local.load(index)(x))


@pytest.mark.gpu
def test_reference_models_trained_on_cuda_are_stored_on_the_cpu(tmp_path):
    images, labels = load_images("digits")
    store = ReferenceStore.create(tmp_path / "refs", SPEC, in_out_design(300, 4, seed=0))
    config = TrainConfig(epochs=1, batch_size=32)
    train_reference_models(
        store, images[:300], labels[:300], config, seed=0, progress=False, device="cuda"
    )
    state = torch.load(store.path(0), weights_only=True)
    assert all(tensor.device.type == "cpu" for tensor in state.values())
    cpu_store = ReferenceStore.create(tmp_path / "cpu", SPEC, store.membership)
    train_reference_models(cpu_store, images[:300], labels[:300], config, seed=0, progress=False)
    for name, tensor in torch.load(cpu_store.path(0), weights_only=True).items():
        torch.testing.assert_close(state[name], tensor, rtol=1e-3, atol=1e-4)
