"""TransRate (Huang et al., ICML 2022): the coding-rate gain of the labels on the features."""

from __future__ import annotations

import numpy as np

from xdistill.select._checks import check_metric_inputs, option_problems
from xdistill.select.metrics import register_metric


def _coding_rate(centred: np.ndarray, eps: float) -> float:
    """0.5 logdet(I_D + Z^T Z / (n eps)) of Z [n, D], via the smaller Gram matrix
    (logdet(I + Z^T Z a) = logdet(I + Z Z^T a))."""
    n, d = centred.shape
    gram = centred.T @ centred if d <= n else centred @ centred.T
    matrix = gram / (n * eps)
    matrix[np.diag_indices(len(matrix))] += 1.0
    return 0.5 * float(np.linalg.slogdet(matrix)[1])


@register_metric("transrate", needs="features", citation="Huang et al., TransRate, ICML 2022",
                 single_sample_class="takes the coding rate of the single row of such a class")
def transrate(features, labels, eps: float = 1e-4) -> float:
    """TransRate (Huang et al. 2022) of ``features [N, D]``, in the formulation of
    the Transfer-Learning-Library (``tllib.ranking.transrate``):

        TransRate = R(Z) - 1/C sum_c R(Z_c),  R(Z) = 1/2 logdet(I_D + Z^T Z / (n eps))

    where Z is the features centred by their overall mean, Z_c its rows of class
    c (not re-centred) and n the number of rows of the matrix at hand. ``eps``
    stands for the squared distortion and enters as 1/(n eps), with no factor
    of the dimension; the class rates are averaged uniformly (1/C), not weighted
    by class frequency. Returns a float; higher is better.
    """
    problems = option_problems("transrate", "eps", eps, minimum=0, strict=True)
    inputs = check_metric_inputs("transrate", labels, features=features, parameter_problems=problems)
    centred = inputs.features - inputs.features.mean(axis=0)
    class_rates = [_coding_rate(centred[inputs.labels == c], eps) for c in range(inputs.num_classes)]
    return _coding_rate(centred, eps) - float(np.mean(class_rates))
