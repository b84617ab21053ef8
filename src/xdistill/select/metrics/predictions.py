"""Metrics of a teacher's predicted probabilities over its own classes: LEEP and NCE."""

from __future__ import annotations

import numpy as np

from xdistill.select._checks import check_metric_inputs
from xdistill.select.metrics import _one_hot, register_metric


@register_metric("leep", needs="probs", citation="Nguyen et al., LEEP, ICML 2020",
                 single_sample_class="counts such a class once in the empirical joint P(y, z)")
def leep(source_probs, labels) -> float:
    """LEEP (Nguyen et al. 2020) of teacher probabilities ``source_probs [N, Cs]``
    over its source classes z for target ``labels [N]``. Returns a float <= 0.

    From the empirical joint P(y, z) = 1/N sum_i probs[i, z] [y_i = y] and the
    conditional P(y | z) = P(y, z) / P(z), LEEP = 1/N sum_i log sum_z P(y_i | z)
    probs[i, z], the mean log-likelihood of the "expected empirical predictor".
    Rows of probs are used as given (they must sum to 1 within 1e-3).
    """
    inputs = check_metric_inputs("leep", labels, probs=source_probs)
    probs, labels = inputs.probs, inputs.labels
    joint = _one_hot(labels, inputs.num_classes).T @ probs / len(labels)  # [C, Cs]
    marginal = joint.sum(axis=0)
    # A source class with P(z) = 0 has probs[:, z] = 0 everywhere, so its column never counts.
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    expected_likelihood = np.einsum("nz,nz->n", probs, conditional[labels])
    return float(np.mean(np.log(expected_likelihood)))


@register_metric("nce", needs="probs", citation="Tran et al., NCE, ICCV 2019",
                 single_sample_class="counts such a class once in the empirical joint")
def _nce_of_probs(source_probs, labels) -> float:
    """NCE with the teacher's predicted source class argmax(probs) as Z."""
    inputs = check_metric_inputs("nce", labels, probs=source_probs)
    return nce(np.argmax(inputs.probs, axis=1), inputs.labels)


def nce(source_labels, labels) -> float:
    """Negative conditional entropy -H(Y | Z) (Tran et al. 2019) of target
    ``labels [N]`` given source labels ``source_labels [N]`` (any integer ids,
    e.g. a teacher's argmax predictions). Natural log; returns a float <= 0.

    H(Y | Z) = -sum_{y,z} P(y, z) log(P(y, z) / P(z)) from the empirical joint
    of (y, z) over the N samples.
    """
    inputs = check_metric_inputs("nce", labels, source_labels=source_labels)
    _, source = np.unique(inputs.source_labels, return_inverse=True)
    counts = np.zeros((source.max() + 1, inputs.num_classes))
    np.add.at(counts, (source, inputs.labels), 1.0)
    joint = counts / len(source)
    marginal = joint.sum(axis=1, keepdims=True)
    seen = joint > 0
    return float(np.sum(joint[seen] * np.log((joint / marginal)[seen])))
