"""A GEPA feedback metric: the reverse scorer's score plus, in words, what it saw.

``dspy.GEPA`` optimises instructions by reflecting on textual feedback. :func:`ledom_feedback_metric`
returns GEPA's metric ``(gold, pred, trace=None, pred_name=None, pred_trace=None) ->
dspy.Prediction(score=..., feedback=...)``: one scorer call scores the prediction (its ``answer_fields``
against ``gold``'s question) and, with ``step_feedback=True``, every prefix of its reasoning, so that the
feedback can name the reverse and forward terms and the weakest step.

Setup:
    ``pip install 'ledom-reason[dspy]'`` (also exported by :mod:`ledom_reason.integrations.dspy`)

Example:
    >>> gepa = dspy.GEPA(metric=ledom_feedback_metric(scorer), auto="light", reflection_lm=lm)  # doctest: +SKIP
    >>> optimized = gepa.compile(program, trainset=train, valset=val)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from ledom_reason._optional import require

require("dspy", "dspy")

import dspy  # noqa: E402

from ledom_reason.integrations._common import preview, scoring_error  # noqa: E402
from ledom_reason.integrations.dspy import DEFAULT_ANSWER_FIELDS, LedomMetric  # noqa: E402
from ledom_reason.reward import Normalize, reverse_reward  # noqa: E402
from ledom_reason.types import PairScore, Scorer  # noqa: E402

__all__ = ["LedomFeedbackMetric", "ledom_feedback_metric"]

ScoreScale = Literal["probability", "reward"]


class LedomFeedbackMetric(LedomMetric):
    """GEPA's feedback metric over a reverse scorer (build it with :func:`ledom_feedback_metric`).

    λ and the normalisation default to the scorer's validated setting (``scorer.recommended_reward``), else
    λ = 1, ``"mean"`` — as for :func:`~ledom_reason.integrations.dspy.ledom_metric`.

    ``score``: with ``score="probability"`` (default) the scorer's calibrated ``p_correct`` when it has one
    (and λ/normalisation were not set explicitly),
    else ``exp(reward)`` — for the default per-token mean, the geometric-mean probability of the scored
    tokens, in (0, 1] like GEPA's ``failure_score=0`` / ``perfect_score=1`` expect, and in the same order as
    the reward; ``score="reward"``: the raw reward (≤ 0; then give GEPA a matching ``failure_score``).

    ``feedback``: the reward and its terms in words — the reverse term (how well the question is recovered
    from the answer, nats per question token), the forward term when the scorer has a forward model, which
    of the two weighs most at this λ — and, with ``step_feedback``, the weakest reasoning step: the step
    whose addition lowered the reward of the partial reasoning most. ``pred_name`` (the predictor GEPA is
    reflecting on) is named in the text.
    """

    def __init__(self, scorer: Scorer, question_field: str = "question",
                 answer_fields: Sequence[str] = DEFAULT_ANSWER_FIELDS, lam: float | None = None,
                 normalize: Normalize | None = None, *, score: ScoreScale = "probability",
                 step_feedback: bool = True, reasoning_field: str = "reasoning", delimiter: str = "\n\n") -> None:
        super().__init__(scorer, question_field, answer_fields, lam, normalize)
        if score not in ("probability", "reward"):
            raise ValueError(f"`score` must be 'probability' or 'reward', got {score!r}")
        self.score = score
        self.step_feedback = step_feedback
        self.reasoning_field = reasoning_field
        self.delimiter = delimiter

    def _steps(self, pred: Any) -> list[str]:
        text = pred.get(self.reasoning_field) if hasattr(pred, "get") else getattr(pred, self.reasoning_field, None)
        if not self.step_feedback or not isinstance(text, str):
            return []
        steps = [s.strip() for s in text.split(self.delimiter) if s.strip()]
        return steps if len(steps) > 1 else []

    def _reward(self, s: PairScore) -> float:
        return reverse_reward(s, lam=self.lam, normalize=self.normalize)

    def scores(self, gold: Any, pred: Any) -> tuple[PairScore, list[float]]:
        """The prediction's score and the rewards of its reasoning prefixes (steps 1..k), in ONE scorer call."""
        q, c = self.pair(gold, pred)
        steps = self._steps(pred)
        pairs = [(q, c)] + [(q, self.delimiter.join(steps[: k + 1])) for k in range(len(steps))]
        try:
            out = self.scorer.score(pairs)
        except Exception as e:
            raise scoring_error(e, [p[1] for p in pairs], ["the prediction"] +
                                [f"reasoning steps 1-{k + 1}" for k in range(len(steps))]) from e
        return out[0], [self._reward(s) for s in out[1:]]

    def __call__(self, gold: Any, pred: Any, trace: Any = None, pred_name: str | None = None,
                 pred_trace: Any = None) -> Any:
        s, prefix_rewards = self.scores(gold, pred)
        reward = self._reward(s)
        # p_correct belongs to the calibration's own reward setting: used unless the caller chose λ/normalisation
        p = s.p_correct if not self._explicit else None
        value = reward if self.score == "reward" else (p if p is not None else math.exp(reward))
        return dspy.Prediction(score=value, feedback=self.feedback(s, reward, self._steps(pred), prefix_rewards,
                                                                    pred_name))

    def feedback(self, s: PairScore, reward: float, steps: list[str], prefix_rewards: list[float],
                 pred_name: str | None = None) -> str:
        """The feedback text (see the class docstring)."""
        per = "per token" if self.normalize == "mean" else "summed"
        rev = s.reverse_mean if self.normalize == "mean" else s.reverse_logprob
        lines = [f"Reverse-model verifier reward {reward:.3f} (log-probability {per}, λ={self.lam:g}; higher is "
                 "better)" + (f", reflecting on predictor `{pred_name}`." if pred_name else ".")]
        lines.append(f"Reverse term: reading the question back from this answer costs {-s.reverse_mean:.2f} nats "
                     f"per question token over {s.question_tokens} tokens — the lower, the better the reasoning "
                     "accounts for every quantity and relation in the question.")
        fwd = None
        if s.forward_logprob is not None and s.forward_mean is not None:
            fwd = s.forward_mean if self.normalize == "mean" else s.forward_logprob
            lines.append(f"Forward term: the answer costs {-s.forward_mean:.2f} nats per token over "
                         f"{s.candidate_tokens} tokens given the question (fluency and plausibility).")
        if fwd is not None and 0.0 < self.lam < 1.0:
            r_part, f_part = self.lam * rev, (1.0 - self.lam) * fwd
            weaker = "reverse" if r_part < f_part else "forward"
            lines.append(f"Weighted, the reverse term contributes {r_part:.3f} and the forward term {f_part:.3f}: "
                         f"the {weaker} term pulls the reward down most.")
        elif self.lam < 1.0 and fwd is None:
            lines.append("(No forward model: only the reverse term was scored.)")
        if prefix_rewards:
            drops = [prefix_rewards[k] - prefix_rewards[k - 1] for k in range(1, len(prefix_rewards))]
            k = min(range(len(drops)), key=drops.__getitem__) + 1
            what = ("lowered the reward of the partial reasoning the most" if drops[k - 1] < 0 else
                    "added the least to the reward of the partial reasoning")
            lines.append(f"Weakest step: step {k + 1} of {len(steps)} ({preview(steps[k], 80)!r}) {what}, from "
                         f"{prefix_rewards[k - 1]:.3f} to {prefix_rewards[k]:.3f}; rewrite it so that it follows "
                         "from the question and the previous steps.")
        return "\n".join(lines)


def ledom_feedback_metric(scorer: Scorer, *, question_field: str = "question",
                          answer_fields: Sequence[str] = DEFAULT_ANSWER_FIELDS, lam: float | None = None,
                          normalize: Normalize | None = None, score: ScoreScale = "probability",
                          step_feedback: bool = True, reasoning_field: str = "reasoning",
                          delimiter: str = "\n\n") -> LedomFeedbackMetric:
    """GEPA's metric ``(gold, pred, trace=None, pred_name=None, pred_trace=None) -> dspy.Prediction(score,
    feedback)`` over a reverse scorer (see :class:`LedomFeedbackMetric`).

    Example:
        >>> dspy.GEPA(metric=ledom_feedback_metric(scorer, lam=0.7), auto="light", reflection_lm=lm)  # doctest: +SKIP
    """
    return LedomFeedbackMetric(scorer, question_field, answer_fields, lam, normalize, score=score,
                               step_feedback=step_feedback, reasoning_field=reasoning_field, delimiter=delimiter)
