"""The score of a predicted entity: the model's probability of the tags it gave the entity's
tokens (an exact CRF marginal, or a product of softmax probabilities)."""

from __future__ import annotations

import math

import numpy as np


def span_score(span, parts, trans) -> float:
    """The model's probability of the tags it gave the span's tokens.

    With a CRF it is the exact marginal probability that tokens ``start .. end - 1`` carry
    these tags (forward score at the first token, transitions and emissions inside,
    backward score at the last, over Z); with softmax, the product of the tokens' tag
    probabilities. A span cut by a long-sentence split multiplies its pieces' figures.
    """
    log_p = 0.0
    for start, piece in parts:
        a, b = max(span.start, start) - start, min(span.end, start + len(piece["tags"])) - start
        if a >= b:
            continue
        y = piece["tags"]
        if trans is None:
            log_p += float(np.sum(np.log(np.maximum(piece["probs"][np.arange(a, b), y[a:b]], 1e-30))))
            continue
        inner = sum(trans[y[t - 1], y[t]] + piece["emissions"][t, y[t]] for t in range(a + 1, b))
        log_p += float(piece["alpha"][a, y[a]] + inner + piece["beta"][b - 1, y[b - 1]] - piece["log_z"])
    return float(math.exp(min(log_p, 0.0)))
