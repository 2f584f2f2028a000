"""er_art.attacks.apgd: Auto-PGD in PyTorch (APGD-CE, APGD-DLR, APGD-T's inner attack) on the
model's
device: correct against closed-form minimal distances, no weaker than ART's APGD, seeded, no host
round trip per iteration, EOT, and the plugins' ``implementation`` switch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import AutoProjectedGradientDescent

from er_art import model_access
from er_art.attacks import get_attack
from er_art.attacks.apgd import AutoPGD, build_apgd, checkpoints
from er_art.attacks.engine import Batch
from er_art.attacks.pgd import PGD
from er_art.attacks.view import attack_view, encode_targets
from er_art.evaluation.outcome import predict_labels
from tests.linear_models import linear_classifier, linear_data, minimal_distance


@pytest.fixture(scope="module")
def sample(digits):
    return digits[2][:100], digits[3][:100]


def robust(clf, x_adv, y) -> np.ndarray:
    return predict_labels(clf, x_adv) == y


# ---------------------------------------------------------------------------- the schedule
def test_checkpoints_follow_the_paper():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99: w_j = ceil(p_j * N)
    assert checkpoints(100) == [22, 41, 58, 70, 80, 87, 93, 99]
    assert checkpoints(25) == [6, 11, 15, 18, 20, 22, 24, 25]
    assert checkpoints(1) == [1]


# ---------------------------------------------------------------------------- scripted runs
class Scripted:
    """Stands in for ``AutoPGD._evaluate``: records each point evaluated and answers with a
    scripted objective, a gradient of ones and a scripted success."""

    def __init__(self, objective, success=lambda call: False):
        self.points, self.objective, self.success = [], objective, success

    def __call__(self, x, labels, target):
        call = len(self.points)
        self.points.append(x.clone())
        n = len(x)
        ok = torch.full((n,), bool(self.success(call)))
        return torch.full((n,), float(self.objective(call))), torch.ones_like(x), ok


def scripted_run(monkeypatch, script, max_iter=25):
    attack = AutoPGD(linear_classifier(), eps=1e3, eps_step=1.0, max_iter=max_iter)
    monkeypatch.setattr(attack, "_evaluate", script)
    rows = torch.from_numpy(np.eye(5, dtype=np.float32)[[0]])
    # from x itself: a random start within 25 steps of the ball's edge (about 1 run in 5) would
    # make the projection bind, which the plain-Python rules below leave out
    monkeypatch.setattr(attack, "_random_start_on", lambda run: False)
    x_adv, broken, _ = attack.attack_batch(Batch(torch.zeros(1, 1, 4, 4), rows))
    return x_adv, broken


def paper_rules(start, objective, max_iter=25):
    """The iterates of the paper's Algorithm 1 on a gradient of ones (no projection binds), in
    plain Python, and how many times the step was halved: momentum 0.75 after the first step; at
    a checkpoint, halve and go back to the best point if the objective rose in fewer than 75 % of
    the steps since the last one (condition 1), or if neither the step nor the best objective
    changed since then (condition 2)."""
    marks, points, eta, halvings = checkpoints(max_iter), [], 1.0, 0
    prev = cur = x_max = start
    f_cur = f_max = objective(0)
    rises, eta_last, f_max_last, last = 0, eta, f_max, 0
    for k in range(max_iter):
        z = cur + eta
        nxt = z if k == 0 else cur + 0.75 * (z - cur) + 0.25 * (cur - prev)
        f = objective(k + 1)
        points.append(nxt)
        rises += f > f_cur
        if f > f_max:
            f_max, x_max = f, nxt
        prev, cur, f_cur = cur, nxt, f
        if k + 1 in marks:
            if rises < 0.75 * (k + 1 - last) or (eta == eta_last and f_max == f_max_last):
                eta, cur, f_cur, halvings = eta / 2, x_max, f_max, halvings + 1
            rises, eta_last, f_max_last, last = 0, eta, f_max, k + 1
    return points, halvings


@pytest.mark.parametrize(
    ("objective", "halvings"),
    [
        (lambda call: 0.0, 8),  # flat: both conditions at every checkpoint
        (lambda call: float(call), 0),  # rising: neither
        (lambda call: float(call // 4), 8),  # rising every 4th step: condition 1 alone
        (lambda call: 0.0 if call == 0 else call - 100.0, 8),  # rising, below the start: cond. 2
    ],
)
def test_the_step_size_schedule_follows_the_paper(monkeypatch, objective, halvings):
    script = Scripted(objective)
    scripted_run(monkeypatch, script)
    want, n = paper_rules(script.points[0], objective)
    assert n == halvings
    assert len(script.points) == 26
    for got, expected in zip(script.points[1:], want, strict=True):
        assert torch.allclose(got, expected, atol=1e-4)


def test_any_adversarial_iterate_counts(monkeypatch):
    """An example misclassified at one iterate only (the 4th) is broken, and that iterate is
    returned (ART's APGD would return the last iterate, where it is classified correctly)."""
    script = Scripted(lambda call: float(call), success=lambda call: call == 4)
    x_adv, broken = scripted_run(monkeypatch, script, max_iter=10)
    assert bool(broken.all())
    assert torch.equal(x_adv, script.points[4])
    never = Scripted(lambda call: float(call % 3))  # not broken: the highest-objective point
    x_adv, broken = scripted_run(monkeypatch, never, max_iter=10)
    assert not bool(broken.any())
    assert torch.equal(x_adv, never.points[2])


# ---------------------------------------------------------------------------- correctness
@pytest.mark.parametrize("norm", ["inf", 2])
def test_breaks_exactly_what_a_linear_model_allows(norm):
    """On an affine classifier the minimal distance is known: every example closer than 0.8 eps
    is broken, none farther than eps is, and every output stays in the ball and the box."""
    clf = linear_classifier()
    x = linear_data(64)
    y, dist = minimal_distance(clf, x, norm)
    eps = float(np.median(dist))
    for loss in ("ce", "dlr"):
        torch.manual_seed(0)
        attack = AutoPGD(attack_view(clf, loss), norm=norm, eps=eps, max_iter=50, loss=loss)
        x_adv = attack.generate(x, y)
        delta = (x_adv - x).reshape(len(x), -1)
        size = np.abs(delta).max(1) if norm == "inf" else np.linalg.norm(delta, axis=1)
        assert (size <= eps * (1 + 1e-5)).all()
        assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
        broken = ~robust(clf, x_adv, y)
        assert broken[dist < 0.8 * eps].all(), loss
        assert not broken[dist > eps].any(), loss


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_no_weaker_than_arts_apgd(trained_digits, digits, loss):
    """At the same budget (one restart of 20 iterations at eps 0.1) er-art's APGD is not
    significantly weaker than ART's AutoProjectedGradientDescent, by a paired test over every
    digits test image and three seeds.

    Why paired and one-sided: the two implementations draw other random starts and differ in
    details (ART counts a rise in condition 1 only above the best loss and returns the last
    iterate), so on any one model each leaves a few examples robust that the other breaks. Counts
    of those discordant examples move with a torch, NumPy or ART upgrade (each retrains this
    model a little differently); their balance does not, unless one attack is weaker. The exact
    McNemar test on them (a binomial test of "ours robust, ART broken" among the discordant pairs)
    fails only at p < 0.001. Measured with benchmarks/apgd_vs_art.py (397 images, 5 seeds):
    CE 54.2 % (ours) vs 54.7 % (ART) robust, DLR 52.6 vs 52.5. What it catches (measured, these
    three seeds): APGD-DLR at half its iterations (p = 4e-4), at a tenth of its first step (7e-5),
    APGD-CE at a quarter of its iterations (5e-3, not caught). The earlier version of this test
    compared our one restart with ART's default of five on 100 images with a 2-example margin:
    an unequal budget that failed when the retrained model moved (DLR: 52.6 vs 47.7 %)."""
    from scipy.stats import binomtest

    x, y = digits[2], digits[3]
    view = attack_view(trained_digits, loss)
    only_ours_robust = only_art_robust = 0
    for seed in range(3):
        torch.manual_seed(seed)
        ours = AutoPGD(view, eps=0.1, max_iter=20, loss=loss, nb_random_init=1).generate(x, y)
        np.random.seed(seed)
        art = AutoProjectedGradientDescent(
            view, norm=np.inf, eps=0.1, eps_step=0.2, max_iter=20, nb_random_init=1,
            loss_type=None, verbose=False,
        ).generate(x, np.eye(10)[y])  # fmt: skip
        r_ours, r_art = robust(trained_digits, ours, y), robust(trained_digits, art, y)
        only_ours_robust += int((r_ours & ~r_art).sum())
        only_art_robust += int((~r_ours & r_art).sum())
        assert r_ours.mean() < (predict_labels(trained_digits, x) == y).mean()
    discordant = only_ours_robust + only_art_robust
    p = binomtest(only_ours_robust, discordant, alternative="greater").pvalue if discordant else 1
    assert p >= 1e-3, (only_ours_robust, only_art_robust, p)


def test_returns_an_adversarial_iterate_or_the_highest_loss_point(trained_digits, sample):
    """Broken examples come back misclassified (any iterate counts), the others at their
    highest-loss point, which the model still classifies correctly."""
    x, y = sample
    view = attack_view(trained_digits, "ce")
    attack = AutoPGD(view, eps=0.08, max_iter=10)
    x0 = torch.from_numpy(x)
    rows = torch.from_numpy(np.eye(10, dtype=np.float32)[y])
    with torch.no_grad():
        torch.manual_seed(0)
        box = (torch.zeros(1, 8, 8), torch.ones(1, 8, 8))
        x_adv, broken, _ = attack.attack_batch(Batch(x0, rows, box))
    assert 0 < int(broken.sum()) < len(y)
    assert np.array_equal(~robust(trained_digits, x_adv.numpy(), y), broken.numpy())


def test_targeted_ce_reaches_the_target(trained_digits, sample):
    x, y = sample
    targets = (y + 1) % 10
    torch.manual_seed(0)
    x_adv = AutoPGD(trained_digits, eps=0.3, max_iter=20, targeted=True).generate(x, targets)
    pred = predict_labels(trained_digits, x_adv)
    assert (pred == targets).mean() > 0.5


def test_dlr_targeted_rows_lower_accuracy(trained_digits, sample):
    x, y = sample
    rows = encode_targets(y, (y + 3) % 10, 10)
    torch.manual_seed(0)
    attack = AutoPGD(attack_view(trained_digits, "dlr-targeted"), eps=0.15, loss="dlr-targeted")
    x_adv = attack.generate(x, rows)
    assert robust(trained_digits, x_adv, y).mean() < (predict_labels(trained_digits, x) == y).mean()


# ---------------------------------------------------------------------------- restarts and seeds
def test_restarts_only_add_broken_examples(trained_digits, sample):
    """Restart 1 is the single run (same seed); later restarts attack only what it left robust."""
    x, y = sample
    runs = {}
    for n in (1, 3):
        torch.manual_seed(5)
        runs[n] = AutoPGD(trained_digits, eps=0.08, max_iter=10, nb_random_init=n).generate(x, y)
    one, three = robust(trained_digits, runs[1], y), robust(trained_digits, runs[3], y)
    assert not (three & ~one).any()
    kept = ~one  # broken by the first restart: left as it was
    assert np.array_equal(runs[3][kept], runs[1][kept])


def test_seeded(trained_digits, sample):
    x, y = sample[0][:20], sample[1][:20]
    out = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        out.append(AutoPGD(trained_digits, eps=0.1, max_iter=5).generate(x, y))
    assert np.array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])


# ---------------------------------------------------------------------------- on the device
def test_no_estimator_calls_and_no_host_round_trip_per_iteration(
    trained_digits, sample, monkeypatch
):
    """The iterations call the model directly: never ART's NumPy API, and the number of host
    transfers and synchronisations does not grow with the number of iterations."""
    x, y = sample
    view = attack_view(trained_digits, "dlr")

    def refuse(*args, **kwargs):
        raise AssertionError("an estimator NumPy call inside the attack")

    for name in ("predict", "loss_gradient", "compute_loss", "class_gradient"):
        monkeypatch.setattr(view, name, refuse)
    names = ("numpy", "cpu", "item", "tolist", "__bool__", "__float__", "__int__", "__index__")
    counts = dict.fromkeys(names, 0)

    def counting(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            counts[name] += 1
            return original(self, *args, **kwargs)

        return wrapper

    for name in counts:
        monkeypatch.setattr(torch.Tensor, name, counting(name))
    seen = []
    for max_iter in (4, 16):
        for key in counts:
            counts[key] = 0
        torch.manual_seed(0)
        AutoPGD(view, eps=0.1, max_iter=max_iter, loss="dlr", batch_size=50).generate(x, y)
        seen.append(dict(counts))
    assert seen[0] == seen[1]
    assert seen[0]["cpu"] <= 2  # one result transfer per batch of 50


def test_eot_averages_over_passes(trained_digits, sample):
    """With eot_samples = M, each of the max_iter + 1 evaluations makes M forward passes."""
    x, y = sample[0][:10], sample[1][:10]
    calls = []
    hook = trained_digits.model.register_forward_hook(lambda *a: calls.append(1))
    try:
        for eot in (1, 3):
            calls.clear()
            AutoPGD(attack_view(trained_digits, "ce", eot), eps=0.1, max_iter=4).generate(x, y)
            assert len(calls) == 5 * eot
    finally:
        hook.remove()


def test_fills_no_weight_gradients(trained_digits, sample):
    x, y = sample[0][:10], sample[1][:10]
    trained_digits.model.zero_grad(set_to_none=True)
    AutoPGD(trained_digits, eps=0.1, max_iter=3, loss="dlr").generate(x, y)
    assert all(p.grad is None for p in trained_digits.model.parameters())


# ---------------------------------------------------------------------------- the plugins
def test_plugins_use_it_and_can_switch_to_art(trained_digits):
    for name in ("apgd-ce", "apgd-dlr"):
        spec = get_attack(name)
        assert isinstance(spec.build(trained_digits, eps=0.1), AutoPGD)
        art = spec.build(trained_digits, eps=0.1, implementation="art")
        assert isinstance(art, AutoProjectedGradientDescent)
        with pytest.raises(ValueError, match="no implementation 'numpy'; accepted: torch, art"):
            spec.build(trained_digits, eps=0.1, implementation="numpy")
    assert get_attack("apgd-t").build(trained_digits, eps=0.1, implementation="art")


def test_apgd_t_both_implementations_lower_accuracy(trained_digits, sample):
    x, y = sample[0][:30], sample[1][:30]
    clean = (predict_labels(trained_digits, x) == y).mean()
    for implementation in ("torch", "art"):
        torch.manual_seed(0)
        np.random.seed(0)
        attack = get_attack("apgd-t").build(
            trained_digits, eps=0.2, max_iter=10, n_target_classes=2, implementation=implementation
        )
        assert robust(trained_digits, attack.generate(x, y), y).mean() < clean, implementation


def test_refuses_bad_settings(trained_digits):
    with pytest.raises(ValueError, match="norm must be"):
        AutoPGD(trained_digits, norm=1)
    with pytest.raises(ValueError, match="Unknown APGD loss 'hinge'"):
        AutoPGD(trained_digits, loss="hinge")
    with pytest.raises(ValueError, match="use targeted=False"):
        AutoPGD(trained_digits, loss="dlr-targeted", targeted=True)
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1"):
        AutoPGD(trained_digits, max_iter=0)
    with pytest.raises(ValueError, match="dlr loss needs at least 3 classes"):
        AutoPGD(linear_classifier(n_classes=2), loss="dlr")
    with pytest.raises(ValueError, match="needs its target labels"):
        AutoPGD(trained_digits, targeted=True).generate(np.zeros((2, 1, 8, 8), np.float32))
    assert isinstance(build_apgd(trained_digits, "ce", eps=0.1), AutoPGD)


# ---------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
def test_on_cuda_without_a_host_sync_per_iteration(digits):
    import er_art

    clf = er_art.build_classifier("test_digits", device_type="cuda", seed=0)
    clf.fit(digits[0], digits[1], batch_size=64, nb_epochs=2)
    attack = AutoPGD(attack_view(clf, "dlr"), eps=0.1, max_iter=10, loss="dlr")
    x0 = torch.from_numpy(digits[2][:64]).cuda()
    rows = torch.from_numpy(np.eye(10, dtype=np.float32)[digits[3][:64]]).cuda()
    box = (torch.zeros(1, 8, 8, device="cuda"), torch.ones(1, 8, 8, device="cuda"))
    attack.attack_batch(Batch(x0, rows, box))  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x_adv, broken, _ = attack.attack_batch(Batch(x0, rows, box))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert x_adv.is_cuda and broken.is_cuda
    assert float((x_adv - x0).abs().max()) <= 0.1 + 1e-6


# ---------------------------------------------------------------------------- PGD
def test_pgd_follows_arts_arithmetic_from_x(trained_digits, sample):
    """From x (no random start), on the examples that none of its iterates misclassifies,
    er-art's PGD and ART's ProjectedGradientDescentPyTorch take the same steps and end at the same
    point: there both return their last iterate, so the arithmetic is the same by construction.
    Examples an iterate breaks differ on purpose (er-art returns that iterate, ART its last one)
    and are left out; which ones they are depends on the trained fixture (with torch 2.14.1 the
    first test image is misclassified before any step), so the test picks them by running the
    attack, not by assuming a model that nothing breaks."""
    from art.attacks.evasion import ProjectedGradientDescent

    x, y = sample
    view = attack_view(trained_digits)
    eps, step = 0.01, 0.004  # small: most examples stay robust at every iterate
    attack = PGD(view, eps=eps, eps_step=step, max_iter=5)
    rows = torch.from_numpy(np.eye(10, dtype=np.float32)[y])
    box = model_access.input_box(view, x.shape[1:])
    with torch.no_grad():
        _, broken, _ = attack.attack_batch(Batch(torch.from_numpy(x), rows, box))  # from x
    never = ~broken.numpy()
    assert never.sum() >= len(y) // 2  # enough examples to compare
    ours = attack.generate(x, y)
    art = ProjectedGradientDescent(
        view, eps=eps, eps_step=step, max_iter=5, num_random_init=0, verbose=False
    ).generate(x, np.eye(10, dtype=np.float32)[y])
    assert robust(trained_digits, ours[never], y[never]).all()
    if not never.all():  # any iterate counts: those come back misclassified
        assert not robust(trained_digits, ours[~never], y[~never]).any()
    np.testing.assert_allclose(ours[never], art[never], atol=1e-6)


def test_pgd_breaks_exactly_what_a_linear_model_allows():
    clf = linear_classifier()
    x = linear_data(64)
    y, dist = minimal_distance(clf, x, "inf")
    eps = float(np.median(dist))
    torch.manual_seed(0)
    x_adv = PGD(attack_view(clf), eps=eps, eps_step=eps / 4, max_iter=20, num_random_init=1)
    x_adv = x_adv.generate(x, y)
    assert np.abs(x_adv - x).max() <= eps * (1 + 1e-5)
    broken = ~robust(clf, x_adv, y)
    assert broken[dist < 0.8 * eps].all() and not broken[dist > eps].any()


def test_pgd_plugin_uses_it_unless_art_is_asked_for(trained_digits):
    from art.attacks.evasion import ProjectedGradientDescent

    spec = get_attack("pgd")
    attack = spec.build(trained_digits, eps=0.1)
    assert isinstance(attack, PGD) and attack.num_random_init == 128 and attack.eps_step == 0.025
    assert isinstance(
        spec.build(trained_digits, eps=0.1, implementation="art"), ProjectedGradientDescent
    )
    assert isinstance(spec.build(trained_digits, eps=0.1, decay=0.9), ProjectedGradientDescent)
    from art.attacks.evasion import BasicIterativeMethod

    bim = get_attack("bim").build(trained_digits, eps=0.1)
    assert isinstance(bim, PGD) and bim.num_random_init == 0 and bim._runs() == 1
    assert not bim._random_start_on(0)
    art_bim = get_attack("bim").build(trained_digits, eps=0.1, implementation="art")
    assert isinstance(art_bim, BasicIterativeMethod)
    with pytest.raises(ValueError, match="num_random_init must be an integer >= 0"):
        PGD(trained_digits, num_random_init=-1)


def test_pgd_no_host_round_trip_per_iteration(trained_digits, sample, monkeypatch):
    x, y = sample
    view = attack_view(trained_digits)
    calls = {"n": 0}
    original = torch.Tensor.cpu

    def cpu(self, *args, **kwargs):
        calls["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    for name in ("predict", "loss_gradient", "compute_loss"):
        monkeypatch.setattr(view, name, lambda *a, **k: pytest.fail("estimator NumPy call"))
    seen = []
    for max_iter in (3, 12):
        calls["n"] = 0
        PGD(view, eps=0.1, max_iter=max_iter, batch_size=50).generate(x, y)
        seen.append(calls["n"])
    assert seen[0] == seen[1] <= 2
