"""The linear probe: solved to convergence, L2 chosen by cross-validation on training rows only."""
from __future__ import annotations

import torch

from tl_core.training import probe


def _blobs(n_per_class=40, dim=20, classes=3, spread=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=g) * 2
    x = torch.cat([centres[c] + spread * torch.randn(n_per_class, dim, generator=g) for c in range(classes)])
    y = torch.arange(classes).repeat_interleave(n_per_class)
    return x * 5 + 3, y  # scaled and shifted: the probe standardises internally


def test_probe_separates_blobs_and_folds_its_scaling_into_a_plain_linear_layer():
    x, y = _blobs()
    fitted = probe.fit_logistic(x, y, 3, l2=1e-3)
    assert fitted.accuracy(x, y) == 1.0
    manual = x @ fitted.weight.T + fitted.bias
    assert torch.allclose(manual, fitted.logits(x))


def test_stronger_l2_gives_smaller_weights_and_cv_prefers_regularising_pure_noise():
    x, y = _blobs()
    weak, strong = probe.fit_logistic(x, y, 3, 1e-4), probe.fit_logistic(x, y, 3, 1.0)
    assert strong.weight.norm() < weak.weight.norm()
    noise_x = torch.randn(90, 200, generator=torch.Generator().manual_seed(1))
    noise_y = torch.arange(3).repeat_interleave(30)
    assert probe.choose_l2(noise_x, noise_y, 3) >= 0.1  # nothing to learn: a strong penalty wins


def test_out_of_fold_probabilities_are_honest():
    x, y = _blobs(spread=0.5)
    proba = probe.out_of_fold_proba(x, y, 3)
    assert proba.shape == (120, 3) and torch.allclose(proba.sum(1), torch.ones(120))
    assert (proba.argmax(1) == y).float().mean() > 0.9
    noise_x = torch.randn(90, 50, generator=torch.Generator().manual_seed(2))
    noise_y = torch.arange(3).repeat_interleave(30)
    assert probe.cv_accuracy(noise_x, noise_y, 3) < 0.6  # held-out rows: no memorising


def test_a_small_solve_runs_on_one_thread_and_gives_the_threads_back():
    """Two OpenMP threads on a 160 x 1280 solve mostly wait on each other (13x the CPU time at load
    45 on 2 cores): small solves take one thread, large ones keep them all."""
    seen = []

    def spy(solver):
        plain = solver.loss
        solver.loss = lambda: (seen.append(torch.get_num_threads()), plain())[1]
        return solver

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, y = _blobs()
        spy(probe.ProbeSolver(x, y, 3, 0.1)).step()
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
        seen.clear()
        big = torch.randn(probe.ONE_THREAD_BELOW // 64 + 1, 64)
        spy(probe.ProbeSolver(big, torch.arange(len(big)) % 3, 3, 0.1)).step(max_iter=2)
        assert seen and set(seen) == {2}
    finally:
        torch.set_num_threads(before)


def test_a_feature_that_barely_moves_gets_no_giant_weight():
    x, y = _blobs()
    g = torch.Generator().manual_seed(1)
    # a feature nearly constant on the training images, its tiny wobble following the labels
    faint = 1e-5 * y.float() + 1e-6 * torch.randn(len(y), generator=g)
    fitted = probe.fit_logistic(torch.cat([x, faint[:, None]], 1), y, 3, l2=1e-3)
    usual = fitted.weight[:, :-1].abs().max()
    # standardised at its own spread it would weigh ~1e5 times a usual feature; fine-tuning that
    # moves it by 0.1 would then swing the logits by thousands
    assert fitted.weight[:, -1].abs().max() < 100 * usual
