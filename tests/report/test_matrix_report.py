"""The matrix report's labels: a student's cost is legible whatever its scale."""

from xdistill.report.matrix import _latency, _param_count


def test_latency_keeps_three_significant_figures_at_every_scale():
    assert _latency(0.002324) == "0.00232 ms"  # an MLP: two decimals would print 0.00
    assert _latency(0.9472) == "0.947 ms"
    assert _latency(12.34) == "12.3 ms"


def test_parameter_counts_in_thousands_and_millions():
    assert _param_count(13_726) == "14k params"
    assert _param_count(2_500_000) == "2.5M params"
