"""The verdict of a strategy comparison, in plain words, from the numbers only.

Every accuracy carries a 95% Wilson interval from the number of validation images. A winner is
named only when its interval does not overlap the runner-up's; otherwise the verdict says "too
close to call". The same rule decides whether pretraining helped (the best pretrained member's
interval lies above scratch's) or hurt (scratch's lies above every pretrained member's: negative
transfer). Non-overlapping 95% intervals is a conservative test (stricter than a two-sample test
at 5%): with the few validation images a classroom has, the verdict would rather say nothing.

Sentences are a closed family (kind + parameters) rendered in English or Spanish by `render`.
"""
from __future__ import annotations

import math
import string
from dataclasses import asdict, dataclass, field

from tl_core.base.formatting import duration
from tl_core.base.messages import EN, LANGS, Message

Z95 = 1.959964  # two-sided 95%
PRETRAINED = ("feature_extraction", "partial", "full")


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a proportion correct/n (Wilson 1927); (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


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

    @property
    def acc(self) -> float:
        return self.correct / self.n_val if self.n_val else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n_val)


def overlap(a: Member, b: Member) -> bool:
    (lo_a, hi_a), (lo_b, hi_b) = a.interval, b.interval
    return lo_a <= hi_b and lo_b <= hi_a


@dataclass(frozen=True)
class Verdict:
    ranking: list  # strategies, best accuracy first
    winner: str | None  # None: too close to call
    tied: list = field(default_factory=list)  # members whose interval overlaps the leader's
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


def _winner_messages(ranked: list[Member]) -> tuple[str | None, list, float, list]:
    leader = ranked[0]
    if len(ranked) == 1:
        return leader.strategy, [], 0.0, [("only_one", {"strategy": leader.strategy, "acc": leader.acc})]
    margin = 100 * (leader.acc - ranked[1].acc)
    tied = [m.strategy for m in ranked[1:] if overlap(leader, m)]
    if tied:
        return None, tied, margin, [("too_close", {"strategies": [leader.strategy, *tied], "acc": leader.acc,
                                                   "points": margin})]
    return leader.strategy, [], margin, [("winner", {"strategy": leader.strategy, "acc": leader.acc,
                                                     "points": margin, "runner_up": ranked[1].strategy})]


def _pretraining(members: list[Member]) -> dict:
    scratch = next((m for m in members if m.strategy == "scratch"), None)
    pre = _ranked([m for m in members if m.strategy in PRETRAINED])
    if scratch is None or not pre:
        return {"pretraining": "n/a", "messages": []}
    best = pre[0]
    gain = 100 * (best.acc - scratch.acc)
    out = {"best_pretrained": best.strategy, "gain_points": gain, "sooner": _sooner(best, scratch)}
    if best.acc > scratch.acc and not overlap(best, scratch):
        out.update(pretraining="helped", messages=[("helped", {"strategy": best.strategy, "points": gain})])
        if out["sooner"]:
            out["messages"].append(("sooner", {"strategy": best.strategy, **out["sooner"]}))
    elif scratch.acc > best.acc and not overlap(best, scratch):
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
