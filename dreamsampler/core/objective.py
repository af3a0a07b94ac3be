"""The objective of one DreamSampler step, eq. (13)/(21): a sum of named, weighted, per-sample terms."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class Term:
    """One term of eq. (13): ``weight * value`` per sample; ``weight`` is a float or a (B,) tensor (it may depend
    on the step, e.g. ``(1 - alpha_bar_t) * lambda_sds``)."""

    value: Tensor                  #: (B,) the unweighted term, one value per sample
    weight: Tensor | float = 1.0


def squared_error(a: Tensor, b: Tensor) -> Tensor:
    """``||a - b||^2`` per sample (summed over all but the batch dimension): the proximal term of eq. (13)."""
    return (a - b).pow(2).flatten(1).sum(1)


def total_loss(terms: dict[str, Term]) -> Tensor:
    """``sum_terms sum_samples weight * value``: samples never mix, so each sample's gradient is its own. A float or
    0-dim host weight multiplies as a scalar (no host-to-device copy per step); a (B,) weight moves to the values."""
    def weighted(t: Term) -> Tensor:
        w = t.weight
        if isinstance(w, Tensor) and w.dim() > 0:
            w = w.to(t.value)
        return (w * t.value).sum()
    return sum(weighted(t) for t in terms.values())
