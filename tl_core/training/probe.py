"""A linear probe solved to convergence: multinomial logistic regression with an L2 penalty.

On cached features the head of feature extraction is a small convex problem. Trained with a
learning rate and epochs it swung 20 points on TrashNet (AdamW lr 1e-3: 65.0%, 1e-2: 73.4%,
1e-1: 85.9%), while solving it exactly, with its L2 strength chosen by cross-validation on the
training split, matched a scikit-learn logistic-regression reference (82.5%) with nothing for
the user to tune. Features are standardised for the solver (better conditioned: L-BFGS
converges in tens of iterations) and the scaling is folded back into a plain linear layer.

Everything here is torch on CPU tensors and takes seconds for thousands of images.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Kept over sklearn LogisticRegressionCV/cross_val_predict: a tie on TrashNet (52 vs 48 s, 81.9 vs 82.5%; bench/probe)
# L2 strengths tried by cross-validation (penalty on the mean loss: lambda/2 * |W|^2).
# Strong to weak, so each fit warm-starts from the previous, smoother solution.
L2_GRID = (1.0, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4, 1e-4)
MAX_ITER = 200
# Below this many feature values (images x dims) an L-BFGS solve runs on one thread: its matrices
# are too small to share, and two OpenMP threads mostly wait on each other. The sample's 5-fold
# L2 search (160 x 1280) took 1.3-1.5 s of CPU on one thread against 17-18 s on two (2-core Xeon,
# load 45; a 120 x 256 solve: 0.05 s against 0.55 s at load 8-11).
ONE_THREAD_BELOW = 4_000_000


@contextlib.contextmanager
def one_thread():
    """torch on one intra-op thread inside the block (process-wide: a thread-runner job training
    next to it runs on one thread for those seconds too)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class LinearProbe:
    """A fitted probe: logits = x @ weight.T + bias, on raw (unstandardised) features."""

    weight: torch.Tensor  # [num_classes, dim]
    bias: torch.Tensor  # [num_classes]
    l2: float

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() @ self.weight.T + self.bias

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return (self.logits(x).argmax(1) == y).float().mean().item() if len(y) else 0.0


# A feature's spread below this share of the median feature's counts as none. Standardising a
# feature that barely moves on the training images multiplies its weight by 1/std: a head solved on
# tf_efficientnet_lite0's features at 96 px and then fine-tuned started at a train loss of about 100,
# as fine-tuning moved those features (issue 20's fault campaign).
STD_FLOOR = 0.01


def _standardiser(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = x.mean(0)
    std = x.std(0, unbiased=False)
    floor = max(1e-6, STD_FLOOR * float(std.median())) if std.numel() else 1e-6
    return mean, std.clamp_min(floor)


class ProbeSolver:
    """L-BFGS on mean weighted cross-entropy + l2/2 |W|^2, on standardised features.

    `step(n)` runs up to n more iterations (L-BFGS keeps its curvature history between calls),
    so a caller can show the solve converging epoch by epoch; `probe()` is the current solution.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float,
                 sample_weight: torch.Tensor | None = None, init: torch.Tensor | None = None, standardise=True):
        self.x, self.y, self.l2 = x.float().cpu(), y.long().cpu(), l2
        self.mean, self.std = _standardiser(self.x) if standardise else (torch.zeros(x.shape[1]), torch.ones(x.shape[1]))
        self.z = (self.x - self.mean) / self.std
        w = sample_weight.float().cpu() if sample_weight is not None else torch.ones(len(y))
        self.w = w / w.sum()
        self.dim = x.shape[1]
        start = init.clone() if init is not None else torch.zeros(num_classes, self.dim + 1)
        self.params = start.requires_grad_(True)
        self._opt = torch.optim.LBFGS([self.params], lr=1, max_iter=MAX_ITER, tolerance_grad=1e-6,
                                      tolerance_change=1e-9, history_size=20, line_search_fn="strong_wolfe")

    def loss(self) -> torch.Tensor:
        logits = self.z @ self.params[:, :self.dim].T + self.params[:, self.dim]
        data = (F.cross_entropy(logits, self.y, reduction="none") * self.w).sum()
        return data + 0.5 * self.l2 * self.params[:, :self.dim].pow(2).sum()

    def step(self, max_iter: int = MAX_ITER) -> None:
        opt = self._opt
        opt.param_groups[0]["max_iter"] = max_iter

        def closure():
            opt.zero_grad()
            loss = self.loss()
            loss.backward()
            return loss

        small = self.z.numel() < ONE_THREAD_BELOW
        with torch.enable_grad(), one_thread() if small else contextlib.nullcontext():
            opt.step(closure)  # enable_grad: callers may be inside torch.inference_mode()/no_grad()

    def solution(self) -> torch.Tensor:
        return self.params.detach().clone()

    def probe(self) -> LinearProbe:
        return _unstandardise(self.solution(), self.mean, self.std, self.l2)


def _solve(z: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, sample_weight=None,
           init: torch.Tensor | None = None) -> torch.Tensor:
    """The converged [W | b] on already standardised z."""
    solver = ProbeSolver(z, y, num_classes, l2, sample_weight, init, standardise=False)
    solver.step(MAX_ITER)
    return solver.solution()


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float,
                 sample_weight: torch.Tensor | None = None) -> LinearProbe:
    """L2-regularised multinomial logistic regression on features x [n, d], labels y [n]."""
    solver = ProbeSolver(x, y, num_classes, l2, sample_weight)
    solver.step(MAX_ITER)
    return solver.probe()


def _unstandardise(params: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, l2: float) -> LinearProbe:
    dim = len(mean)
    weight = params[:, :dim] / std
    bias = params[:, dim] - weight @ mean
    return LinearProbe(weight, bias, l2)


def stratified_folds(y: torch.Tensor, folds: int, seed: int = 0) -> list[torch.Tensor]:
    """Index tensors of `folds` validation folds, each class spread evenly (fixed seed)."""
    gen = torch.Generator().manual_seed(seed)
    fold_of = torch.empty(len(y), dtype=torch.long)
    for c in y.unique():
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        fold_of[idx] = torch.arange(len(idx)) % folds
    return [(fold_of == k).nonzero().flatten() for k in range(folds)]


def _usable_folds(y: torch.Tensor, folds: int) -> int:
    """No more folds than the smallest class has images (each fold must see every class)."""
    counts = torch.bincount(y)
    smallest = int(counts[counts > 0].min()) if len(y) else 0
    return max(2, min(folds, smallest))


def l2_search(x: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int = 5, seed: int = 0, grid=L2_GRID):
    """Yields (l2, mean held-out accuracy, score) for each strength of `grid` in turn, strong to weak;
    score = accuracy - 1e-3 * log-loss (log-loss only separates ties). Each fold warm-starts from
    its previous, stronger strength's solution. Training data only."""
    x, y = x.float().cpu(), y.long().cpu()
    splits = []
    for held in stratified_folds(y, _usable_folds(y, folds), seed):
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        mean, std = _standardiser(x[keep])
        splits.append(((x[keep] - mean) / std, y[keep], (x[held] - mean) / std, y[held]))
    params = [None] * len(splits)
    for l2 in grid:
        acc_sum, score_sum = 0.0, 0.0
        for k, (z_fit, y_fit, z_held, y_held) in enumerate(splits):
            params[k] = _solve(z_fit, y_fit, num_classes, l2, init=params[k])
            logits = z_held @ params[k][:, :-1].T + params[k][:, -1]
            acc = (logits.argmax(1) == y_held).float().mean().item()
            acc_sum += acc
            score_sum += acc - 1e-3 * F.cross_entropy(logits, y_held).item()
        yield l2, acc_sum / len(splits), score_sum / len(splits)


def best_l2(scores: list[tuple[float, float]]) -> float:
    """The strength with the best score of [(l2, score)]; ties: the stronger penalty."""
    return max(scores, key=lambda s: (s[1], s[0]))[0]


def too_few_to_search(y: torch.Tensor) -> bool:
    """Too few images (or a single class) to cross-validate an L2 strength."""
    return len(y) < 4 or len(y.unique()) < 2


def choose_l2(x: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int = 5, seed: int = 0,
              grid=L2_GRID) -> float:
    """The L2 strength with the best k-fold cross-validated accuracy on (x, y): training data only."""
    if too_few_to_search(y):
        return grid[len(grid) // 2]  # a middle value
    return best_l2([(l2, score) for l2, _, score in l2_search(x, y, num_classes, folds, seed, grid)])


def out_of_fold_proba(x: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int = 5,
                      l2: float | None = None, seed: int = 0) -> torch.Tensor:
    """Probabilities [n, C] for every row from a probe that never saw that row (k-fold)."""
    x, y = x.float().cpu(), y.long().cpu()
    l2 = choose_l2(x, y, num_classes, folds, seed) if l2 is None else l2
    proba = torch.zeros(len(y), num_classes)
    for held in stratified_folds(y, _usable_folds(y, folds), seed):
        keep = torch.ones(len(y), dtype=torch.bool)
        keep[held] = False
        probe = fit_logistic(x[keep], y[keep], num_classes, l2)
        proba[held] = probe.logits(x[held]).softmax(1)
    return proba


def cv_accuracy(x: torch.Tensor, y: torch.Tensor, num_classes: int, folds: int = 5, seed: int = 0) -> float:
    """k-fold cross-validated accuracy of the probe. Its L2 is chosen by cross-validation on the same
    rows, so the figure is slightly optimistic; it is meant for comparisons made the same way."""
    proba = out_of_fold_proba(x, y, num_classes, folds, seed=seed)
    return (proba.argmax(1) == y.long().cpu()).float().mean().item()
