"""Heads solved exactly on frozen features, instead of trained with a learning rate.

Feature extraction: with the features cached, a linear head is a convex problem (multinomial
logistic regression). SGD epochs at a fixed learning rate left it 9 points below a logistic-
regression reference on TrashNet (73.4% against 82.5%), and the result swung 20 points with the
learning rate. Here the L2 strength is chosen by 5-fold cross-validation on the training images
only (each strength's held-out accuracy is an event: the Train page's live chart), then L-BFGS
runs to convergence in one step. There are no epochs to show or choose (issue 21: 20 identical
"epochs" told the user nothing): the run has one, the converged head.

Fine-tuning (partial, full) from pretrained weights starts from that solved head instead of a
random one ("linear probe, then fine-tune", Kumar et al., ICLR 2022): a random head sends large
gradients into the pretrained features in the first steps and distorts them.
"""
from __future__ import annotations

import time

import torch

from tl_core.base.events import HeadSearch, Note, Progress
from tl_core.base.messages import Message
from tl_core.training.features import FeatureLoop
from tl_core.training.l2_memory import remembered_search
from tl_core.training.probe import L2_GRID, MAX_ITER, ProbeSolver, best_l2, choose_l2, too_few_to_search

CV_FOLDS = 5


def _solve_setup(loop: FeatureLoop, l2: float | None = None) -> ProbeSolver:
    run = loop.run
    x, y = loop.x_train.cpu(), loop.y_train.cpu()
    if l2 is None:
        l2 = _chosen_l2(x, y, len(run.classes), run.cfg.seed)
    # class weighting (RunConfig.class_weights) is a weight per image here, as in the loss
    weight = torch.tensor(run.class_weights)[y] if getattr(run, "class_weights", None) else None
    return ProbeSolver(x, y, len(run.classes), l2, sample_weight=weight)


def _chosen_l2(x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int) -> float:
    """choose_l2, from the search an earlier run on these features kept where there is one (l2_memory)."""
    if too_few_to_search(y):  # choose_l2 takes a middle value: nothing to search or keep
        return choose_l2(x, y, num_classes, CV_FOLDS, seed=seed)
    return best_l2([(l2, score) for l2, _, score in remembered_search(x, y, num_classes, CV_FOLDS, seed)])


def search_l2(loop: FeatureLoop):
    """choose_l2 with its progress: yields a HeadSearch after each strength; returns the chosen one."""
    run = loop.run
    x, y = loop.x_train.cpu(), loop.y_train.cpu()
    if too_few_to_search(y):
        return choose_l2(x, y, len(run.classes), CV_FOLDS, seed=run.cfg.seed)  # too few to cross-validate
    tried, accs, scores = [], [], []
    for l2, acc, score in remembered_search(x, y, len(run.classes), CV_FOLDS, run.cfg.seed):
        run.check_stop()
        tried.append(l2)
        accs.append(acc)
        scores.append((l2, score))
        yield HeadSearch(list(tried), list(accs), len(L2_GRID), CV_FOLDS)
    chosen = best_l2(scores)
    yield HeadSearch(tried, accs, len(L2_GRID), CV_FOLDS, chosen)
    return chosen


def _install(head: torch.nn.Linear, solver: ProbeSolver) -> None:
    fitted = solver.probe()
    with torch.no_grad():
        head.weight.copy_(fitted.weight.to(head.weight))
        head.bias.copy_(fitted.bias.to(head.bias))


def l2_note(l2: float, n: int) -> Note:
    return Note.of(Message("head.solved", {"l2": l2, "folds": CV_FOLDS, "n": n}))


class SolvedHeadLoop(FeatureLoop):
    """Feature extraction with a linear head solved to convergence (same interface as FeatureLoop).
    One "epoch": the solve itself, after the features and the L2 search (prepare)."""

    epochs = 1

    def __init__(self, run):
        super().__init__(run)
        run.keep_last = True  # the converged head is the model; no pick by validation accuracy
        self.steps_per_epoch = 1

    def prepare(self):
        yield from super().prepare()
        l2 = yield from search_l2(self)
        self.solver = _solve_setup(self, l2)
        yield l2_note(self.solver.l2, len(self.y_train))

    def train_epoch(self, epoch: int):
        run, t = self.run, time.perf_counter()
        run.check_stop()
        self.solver.step(MAX_ITER)  # L-BFGS stops early once converged
        _install(self.head, self.solver)
        with torch.no_grad():
            logits = self.head(self.x_train)
            loss = run.loss_fn(logits, self.y_train).item()
        seconds = max(time.perf_counter() - t, 1e-6)
        n = len(self.y_train)
        yield Progress("train", epoch, 1, 1, loss, n / seconds, 0.0)
        return {"train/loss": loss, "train/acc": (logits.argmax(1) == self.y_train).float().mean().item(),
                "images_per_s": n / seconds, "lr": 0.0}


def init_head_from_probe(run):
    """Before fine-tuning: embed the images with the pretrained backbone (cached), solve the linear
    head on them and install it. Yields the embedding's Progress events and one Note."""
    loop = FeatureLoop(run)
    yield from loop.prepare()
    solver = _solve_setup(loop)
    solver.step(MAX_ITER)
    _install(loop.head, solver)
    # the CPU embedding pass switched the model to channels_last: back to the layout it trains in
    run.model.to(memory_format=torch.channels_last if run.channels_last else torch.contiguous_format)
    train_acc = solver.probe().accuracy(loop.x_train.cpu(), loop.y_train.cpu())
    yield Note.of(Message("head.fine_tune_from_solved", {"acc": train_acc, "l2": solver.l2}))
