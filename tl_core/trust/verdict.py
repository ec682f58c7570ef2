"""The verdict of a strategy comparison, in plain words, from the numbers only.

Every accuracy carries a 95% Wilson interval from the number of validation images. The members
are scored on the same validation images, so whether two of them differ is decided by McNemar's
paired test (exact: a binomial test on the images that exactly one of the two got right), at 5%.
A winner is named only when the leader differs from every other member by that test; otherwise
the verdict says "too close to call". The same test decides whether pretraining helped (the best
pretrained member beats scratch) or hurt (scratch beats every pretrained member: negative
transfer). Members without per-image results (runs from before they were kept) fall back to the
older, more conservative rule: their 95% intervals must not overlap.

Sentences are a closed family (kind + parameters) rendered in English or Spanish by `render`.
"""
from __future__ import annotations

import math
import string
from dataclasses import asdict, dataclass, field

from tl_core.base.formatting import duration
from tl_core.base.messages import EN, LANGS, Message

ALPHA = 0.05  # the paired test's significance level
PRETRAINED = ("feature_extraction", "partial", "full")


def wilson(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion correct/n (Wilson 1927); (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest  # scipy.stats takes seconds to import; the Compare page imports this module
    ci = binomtest(correct, n).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def mcnemar(right_a: dict, right_b: dict) -> tuple[int, int, float]:
    """McNemar's exact paired test on the images both were scored on ({path: right?} each):
    (images only a got right, images only b got right, two-sided p-value)."""
    from scipy.stats import binomtest  # heavy import: see wilson
    common = right_a.keys() & right_b.keys()
    only_a = sum(1 for k in common if right_a[k] and not right_b[k])
    only_b = sum(1 for k in common if right_b[k] and not right_a[k])
    if only_a + only_b == 0:
        return 0, 0, 1.0
    return only_a, only_b, float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


@dataclass(frozen=True)
class Member:
    """One finished member of a comparison, as the verdict needs it."""

    strategy: str
    correct: int  # validation images right at the best epoch
    n_val: int
    # (seconds since the run started, validation accuracy) at the end of each epoch
    curve: tuple = ()
    wall_s: float | None = None
    energy_wh: float | None = None
    energy_estimate: bool = True
    # ((validation image path, right at the best epoch?), ...); () when the run did not keep them
    right: tuple = ()

    @property
    def acc(self) -> float:
        return self.correct / self.n_val if self.n_val else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n_val)


def overlap(a: Member, b: Member) -> bool:
    (lo_a, hi_a), (lo_b, hi_b) = a.interval, b.interval
    return lo_a <= hi_b and lo_b <= hi_a


def paired(a: Member, b: Member) -> tuple[int, int, float] | None:
    """McNemar's test between two members, or None when either lacks per-image results."""
    if not a.right or not b.right:
        return None
    right_a, right_b = dict(a.right), dict(b.right)
    return mcnemar(right_a, right_b) if right_a.keys() & right_b.keys() else None


def apart(a: Member, b: Member) -> bool:
    """Whether a and b differ beyond the noise: the paired test, or disjoint intervals without it."""
    test = paired(a, b)
    return test[2] < ALPHA if test is not None else not overlap(a, b)


@dataclass(frozen=True)
class Verdict:
    ranking: list  # strategies, best accuracy first
    winner: str | None  # None: too close to call
    tied: list = field(default_factory=list)  # members the leader does not beat beyond the noise (apart)
    margin_points: float = 0.0  # leader minus runner-up, in accuracy points
    pretraining: str = "n/a"  # helped | hurt | unclear | n/a (no scratch or no pretrained member)
    best_pretrained: str | None = None
    gain_points: float = 0.0  # best pretrained minus scratch, in points
    # how much sooner the best pretrained member reached scratch's best accuracy
    sooner: dict | None = None
    negative_transfer: bool = False
    messages: list = field(default_factory=list)  # [(kind, params)] for render()

    def to_dict(self) -> dict:
        return asdict(self)


def _ranked(members: list[Member]) -> list[Member]:
    # accuracy first; between equals the cheaper one (less wall time) is the better choice
    return sorted(members, key=lambda m: (-m.acc, m.wall_s if m.wall_s is not None else math.inf))


def _time_to_reach(member: Member, target: float) -> tuple[float, int] | None:
    for epoch, (seconds, acc) in enumerate(member.curve, 1):
        if acc >= target - 1e-9:
            return seconds, epoch
    return None


def _sooner(best: Member, scratch: Member) -> dict | None:
    """When `best` reached scratch's best accuracy, against when scratch did."""
    target = max((acc for _, acc in scratch.curve), default=scratch.acc)
    mine, theirs = _time_to_reach(best, target), _time_to_reach(scratch, target)
    if mine is None or theirs is None:
        return None
    return {"target": target, "seconds": mine[0], "epoch": mine[1],
            "scratch_seconds": theirs[0], "scratch_epoch": theirs[1]}


def _got_there_first(sooner: dict | None) -> bool:
    """Did the pretrained member reach scratch's best accuracy in less time? Only then is it said:
    a one-epoch comparison reaches it in epoch 1 on both sides, and the pretrained member's epoch
    (its head solved first) can take longer, which the sentence under "Pretraining helped" read as
    a head start."""
    return sooner is not None and sooner["seconds"] < sooner["scratch_seconds"]


def _winner_messages(ranked: list[Member]) -> tuple[str | None, list, float, list]:
    leader = ranked[0]
    if len(ranked) == 1:
        return leader.strategy, [], 0.0, [("only_one", {"strategy": leader.strategy, "acc": leader.acc})]
    margin = 100 * (leader.acc - ranked[1].acc)
    tied = [m for m in ranked[1:] if not apart(leader, m)]
    if tied:
        params = {"strategies": [leader.strategy, *(m.strategy for m in tied)], "acc": leader.acc, "points": margin}
        tests = [t for t in (paired(leader, m) for m in tied) if t is not None]
        names = [m.strategy for m in tied]
        if tests:  # the weakest evidence among the tied: the largest p-value
            return None, names, margin, [("too_close_paired", {**params, "p": max(t[2] for t in tests)})]
        return None, names, margin, [("too_close", params)]
    params = {"strategy": leader.strategy, "acc": leader.acc, "points": margin, "runner_up": ranked[1].strategy}
    test = paired(leader, ranked[1])
    if test is not None:
        return leader.strategy, [], margin, [("winner_paired", {**params, "only_leader": test[0],
                                                                "only_runner_up": test[1], "p": test[2]})]
    return leader.strategy, [], margin, [("winner", params)]


def _pretraining(members: list[Member]) -> dict:
    scratch = next((m for m in members if m.strategy == "scratch"), None)
    pre = _ranked([m for m in members if m.strategy in PRETRAINED])
    if scratch is None or not pre:
        return {"pretraining": "n/a", "messages": []}
    best = pre[0]
    gain = 100 * (best.acc - scratch.acc)
    out = {"best_pretrained": best.strategy, "gain_points": gain, "sooner": _sooner(best, scratch)}
    if best.acc > scratch.acc and apart(best, scratch):
        out.update(pretraining="helped", messages=[("helped", {"strategy": best.strategy, "points": gain})])
        if _got_there_first(out["sooner"]):
            out["messages"].append(("sooner", {"strategy": best.strategy, **out["sooner"]}))
    elif scratch.acc > best.acc and apart(best, scratch):
        # scratch beats every pretrained member beyond the noise: the pretrained features hurt here
        out.update(pretraining="hurt", negative_transfer=True,
                   messages=[("negative_transfer", {"points": -gain, "strategy": best.strategy})])
    else:
        out.update(pretraining="unclear", messages=[("pretraining_unclear", {"points": gain})])
    return out


def _energy_message(members: list[Member]) -> list:
    by = {m.strategy: m for m in members if m.energy_wh is not None}
    fe, scratch = by.get("feature_extraction"), by.get("scratch")
    if fe is None or scratch is None or fe.energy_wh <= 0:
        return []
    return [("energy", {"wh": fe.energy_wh, "ratio": scratch.energy_wh / fe.energy_wh,
                        "estimate": fe.energy_estimate or scratch.energy_estimate})]


def decide(members: list[Member]) -> Verdict:
    """The verdict for the finished members of one comparison (at least one)."""
    if not members:
        raise ValueError("a verdict needs at least one finished member")
    ranked = _ranked(members)
    winner, tied, margin, messages = _winner_messages(ranked)
    pre = _pretraining(members)
    messages = messages + pre.pop("messages") + _energy_message(members)
    return Verdict(ranking=[m.strategy for m in ranked], winner=winner, tied=tied, margin_points=margin,
                   messages=messages, **pre)


# ------------------------------------------------------------------ sentences


def _said(kind: str, lang: str) -> str:
    return Message(kind).render(lang)


def _name(strategy: str, lang: str) -> str:
    return _said(f"strategy.{strategy}", lang) if f"strategy.{strategy}" in EN else strategy


def _listed(names: list, lang: str) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + _said("verdict.and", lang) + names[-1]


def render(messages: list, lang: str = "en") -> list[str]:
    """The verdict's messages as sentences in `lang` (en | es; anything else falls back to en).

    The sentences are kinds of tl_core.base.messages ("verdict.<kind>"), with the strategies' names."""
    lang = lang if lang in LANGS else "en"
    out = []
    for kind, params in messages:
        p = dict(params)
        for key in ("strategy", "runner_up"):
            if key in p:
                p[key] = _name(p[key], lang)
        if "strategies" in p:
            p["strategies"] = _listed([_name(s, lang) for s in p["strategies"]], lang)
        for key in ("seconds", "scratch_seconds"):
            if key in p:
                p[key] = duration(p[key])
        p["estimated"] = _said("verdict.estimated", lang) if p.get("estimate") else ""
        fields = {f for _, f, _, _ in string.Formatter().parse(EN[f"verdict.{kind}"]) if f}
        text = Message(f"verdict.{kind}", {k: v for k, v in p.items() if k in fields}).render(lang)
        out.append(text[0].upper() + text[1:])
    return out
