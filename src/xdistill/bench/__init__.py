"""Measurement: benchmark suites (``xdistill bench``), the cache's costs
(``--perf``), selection-metric validation, metric timings and the selection
sweep. ``benchmarks/`` holds thin scripts that call these."""
