import numpy as np
import pytest
from privaudit.attacks.attacks import ATTACKS, AttackInputs, build_attack
from privaudit.attacks.registry import Registry
from privaudit.attacks.signals import Signals
from privaudit.core.errors import InputError
from scipy.stats import norm


def signals(confidence, probability=None):
    confidence = np.asarray(confidence, dtype=float)
    probability = (
        1 / (1 + np.exp(-confidence))
        if probability is None
        else np.asarray(probability, dtype=float)
    )
    return Signals(loss=-np.log(probability), probability=probability, confidence=confidence)


# Hand-made case: 3 audit points, 4 references (complementary pairs), 1 query, 3 population points.
REFERENCE_IN = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=bool)
REFERENCE_CONF = np.array([[2.0, 0.5, 1.5], [0.1, 1.8, -0.2], [2.6, 1.1, 0.3], [0.4, -0.3, 2.2]])[
    ..., None
]
TARGET_CONF = np.array([1.9, 0.2, 1.0])[:, None]
POP_PROB = np.array([0.5, 0.8, 0.3])[:, None]
REF_POP_PROB = np.array([[0.4, 0.9, 0.2], [0.6, 0.7, 0.5], [0.5, 0.8, 0.1], [0.3, 0.6, 0.4]])[
    ..., None
]
HAND = AttackInputs(
    target=signals(TARGET_CONF),
    references=signals(REFERENCE_CONF),
    reference_in=REFERENCE_IN,
    population=signals(np.log(POP_PROB / (1 - POP_PROB)), POP_PROB),
    reference_population=signals(np.log(REF_POP_PROB / (1 - REF_POP_PROB)), REF_POP_PROB),
)


def test_lira_equals_hand_computation():
    online, offline = (
        build_attack("lira_online").score(HAND),
        build_attack("lira_offline").score(HAND),
    )
    for n in range(3):
        conf_in = [REFERENCE_CONF[r, n, 0] for r in range(4) if REFERENCE_IN[r, n]]
        conf_out = [REFERENCE_CONF[r, n, 0] for r in range(4) if not REFERENCE_IN[r, n]]
        x = TARGET_CONF[n, 0]
        expected = norm.logpdf(x, np.mean(conf_in), np.std(conf_in)) - norm.logpdf(
            x, np.mean(conf_out), np.std(conf_out)
        )
        assert online[n] == pytest.approx(expected)
        assert offline[n] == pytest.approx(norm.logcdf(x, np.mean(conf_out), np.std(conf_out)))


def test_lira_fixed_variance_shares_one_std_of_all_observations():
    score = build_attack("lira_offline", fixed_variance=True).score(HAND)
    out = ~REFERENCE_IN
    std = np.std([REFERENCE_CONF[r, n, 0] for n in range(3) for r in range(4) if out[r, n]])
    for n in range(3):
        assert score[n] == pytest.approx(
            norm.logcdf(TARGET_CONF[n, 0], REFERENCE_CONF[out[:, n], n, 0].mean(), std)
        )


@pytest.mark.parametrize("online", [True, False])
def test_rmia_equals_hand_computation(online):
    a, gamma = 0.4, 1.1
    attack = (
        build_attack("rmia_online", gamma=gamma)
        if online
        else build_attack("rmia_offline", a=a, gamma=gamma)
    )
    score = attack.score(HAND)
    p_target = 1 / (1 + np.exp(-TARGET_CONF[:, 0]))
    p_refs = 1 / (1 + np.exp(-REFERENCE_CONF[..., 0]))

    def marginal(mean):
        return mean if online else ((1 + a) * mean + 1 - a) / 2

    for n in range(3):
        used = [r for r in range(4) if online or not REFERENCE_IN[r, n]]
        ratio_x = p_target[n] / marginal(np.mean([p_refs[r, n] for r in used]))
        wins = 0
        for z in range(3):
            ratio_z = POP_PROB[z, 0] / marginal(np.mean(REF_POP_PROB[:, z, 0]))
            wins += ratio_x / ratio_z > gamma
        assert score[n] == pytest.approx(wins / 3)


def test_reference_count_limits_references_per_example():
    full = build_attack("rmia_offline", references=1).score(HAND)
    # with one OUT reference per example p(x) comes from the first OUT model alone
    p_refs = 1 / (1 + np.exp(-REFERENCE_CONF[..., 0]))
    first_out = [p_refs[np.flatnonzero(~REFERENCE_IN[:, n])[0], n] for n in range(3)]
    single = AttackInputs(
        target=HAND.target,
        references=signals(np.array(first_out)[None, :, None]),
        reference_in=np.zeros((1, 3), dtype=bool),
        population=HAND.population,
        reference_population=signals(np.zeros((1, 3, 1)), REF_POP_PROB[:1]),
    )
    np.testing.assert_allclose(full, build_attack("rmia_offline").score(single))


def test_registry_fails_loudly():
    with pytest.raises(InputError, match="unknown attack 'lira'"):
        ATTACKS.get("lira")
    with pytest.raises(InputError, match="no parameter 'alpha'"):
        build_attack("rmia_offline", alpha=1)
    registry = Registry("thing")
    registry.register("a")(int)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a")(float)
    assert set(ATTACKS.names()) == {
        "loss",
        "population",
        "lira_online",
        "lira_offline",
        "rmia_online",
        "rmia_offline",
    }


def test_population_attack_is_loss_rank_among_population():
    inputs = AttackInputs(
        target=signals([[3.0], [0.0]]), population=signals([[-1.0], [1.0], [2.0], [4.0]])
    )
    # higher confidence = lower loss; example 0 has a lower loss than 3 of 4 population points
    np.testing.assert_allclose(build_attack("population").score(inputs), [0.75, 0.25])
    with pytest.raises(InputError, match="needs population"):
        build_attack("population").score(AttackInputs(target=signals([[1.0]])))
