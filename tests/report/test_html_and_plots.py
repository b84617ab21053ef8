"""The HTML writer and the figures, each on its own."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.report.helpers import PNG_SIGNATURE, decode_images, external_references, tables_by_id
from xdistill.report import plots
from xdistill.report.html import HtmlPage, format_cell, mean_std_cell

CURVES = [{"epoch": e, "train": {"loss": 2.0 / e, "ce": 1.5 / e, "kd": 0.5 / e}, "seconds": 0.1,
           "test": {"accuracy": 0.3 + 0.1 * e}} for e in (1, 2, 3)]


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as image:
        image.verify()
    with Image.open(io.BytesIO(png)) as image:
        return image.size


@pytest.mark.parametrize("make", [
    lambda: plots.learning_curves({"weighted": CURVES}),
    lambda: plots.learning_curves({"weighted": CURVES, "supervised": CURVES[:2]}, "two runs"),
    lambda: plots.accuracy_bars({"a": {"m1": (0.5, 0.1), "m2": (0.6, 0.0)}, "b": {"m1": (0.4, 0.05)}}, ["m1", "m2"]),
    lambda: plots.accuracy_vs_cost([{"label": "m1", "accuracy": 0.5, "params": 1000, "latency_ms": 0.1},
                                    {"label": "m2", "accuracy": 0.6, "params": 2000, "latency_ms": 0.2}]),
    lambda: plots.metric_scatter({"logme": {"t0": 1.0, "t1": 2.0, "t2": None}, "leep": {"t0": -1.0, "t1": -0.5}},
                                 {"t0": 0.4, "t1": 0.6, "t2": 0.5}, {"logme": {"kendall_tau": 1.0}}),
    lambda: plots.teacher_weights({"a": {"t0": 0.7, "t1": 0.3}, "b": {"t0": 1.0}}),
    lambda: plots.per_class_bars({"supervised (seed 0)": [1.0, None, 0.5], "weighted (seed 0)": [0.5, 0.25]}),
    lambda: plots.calibration_bars({"supervised": {"ece": 0.1, "nll": 1.2}, "weighted": {"ece": None, "nll": 0.9}}),
    lambda: plots.reliability_diagram({"weighted": {"confidence": [0.4, 0.7, 0.95], "accuracy": [0.3, 0.6, 0.9]}}),
])
def test_every_figure_is_a_png(make):
    width, height = _png_size(make())
    assert width > 200 and height > 150


def test_page_is_self_contained_and_escapes_text(tmp_path):
    page = HtmlPage("A <title> & more")
    page.heading("Numbers")
    page.paragraph("<script>alert(1)</script>")
    page.table(["name", "value"], [["<b>x</b>", 0.123456], ["none", None], ["count", 7]], table_id="t")
    page.table_from_dicts([{"a": 1, "b": 0.5}, {"a": 2, "c": "z"}], table_id="d")
    page.image(plots.teacher_weights({"a": {"t0": 1.0}}), "weights")
    path = page.write(tmp_path / "page.html")
    text = path.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert external_references(text) == []
    assert len(decode_images(text)) == 1
    tables = tables_by_id(text)
    assert tables["t"]["rows"] == [["<b>x</b>", "0.1235"], ["none", "-"], ["count", "7"]]
    assert tables["d"]["header"] == ["a", "b", "c"]
    assert tables["d"]["rows"] == [["1", "0.5000", "-"], ["2", "-", "z"]]
    assert not list(tmp_path.glob(".*.tmp"))


def test_cell_formats():
    assert format_cell(None) == "-"
    assert format_cell(3) == "3"
    assert format_cell(0.0) == "0"
    assert format_cell(0.5) == "0.5000"
    assert format_cell(-1.23456) == "-1.235"
    assert format_cell(0.0331) == "0.03310"
    assert format_cell(0.099996) == "0.1000"  # rounds up into the next decade: still 4 digits
    assert format_cell(123.456) == "123.5"
    assert format_cell(12345.6) == "12346"
    assert format_cell(0.00012345) == "1.234e-04"
    assert format_cell(float("nan")) == "nan"
    assert mean_std_cell(0.81234, 0.01) == "0.8123 ± 0.0100"
    assert mean_std_cell(12.3456, 0.5) == "12.35 ± 0.50"
    assert mean_std_cell(None, None) == "-"


def test_tables_scroll_in_their_own_box_and_long_names_may_wrap(tmp_path):
    page = HtmlPage("Wide")
    page.table(["linear_probe_accuracy", "value"], [["/runs/weighted-seed0", 0.5]], table_id="w")
    page.flag("Student below <teacher>", ["cause one", "cause <two>"], "f")
    text = page.write(tmp_path / "w.html").read_text()
    assert '<div class="table-box"><table id="w">' in text
    assert "div.table-box { max-width: 100%; overflow-x: auto;" in text
    assert "img { max-width: 100%;" in text
    assert "<th>linear_<wbr>probe_<wbr>accuracy</th>" in text and "<td>/<wbr>runs/<wbr>weighted-<wbr>seed0</td>" in text
    assert '<td class="num">0.5000</td>' in text
    assert tables_by_id(text)["w"]["rows"] == [["/runs/weighted-seed0", "0.5000"]]
    assert ('<div class="flag" id="f" role="alert"><strong>Student below &lt;teacher&gt;</strong>'
            "<ul><li>cause one</li><li>cause &lt;two&gt;</li></ul></div>") in text
