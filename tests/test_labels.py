"""skinage.data.labels: --remap, --bins and class ordering."""

from __future__ import annotations

import pytest

from skinage.config import ConfigError
from skinage.data.labels import LabelMapper, normalise_label, parse_bins, parse_remap, sort_classes


def test_forehead_remap_7_to_4():
    m = LabelMapper(remap="0,1:0 2,3:1 4:2 5,6:3")
    assert [m.map(g) for g in range(7)] == ["0", "0", "1", "1", "2", "3", "3"]
    # the label table stores grades as floats, some tools as zero-padded strings
    assert m.map("3.0") == "1" and m.map("06") == "3" and m.map(4.0) == "2"
    assert m.map(7) is None and m.why(7) == "label outside remap"
    assert m.map("") is None and m.why("") == "missing label"
    assert m.classes() == ["0", "1", "2", "3"]


def test_remap_syntax():
    assert parse_remap("0,1:0;2:1") == {"0": "0", "1": "0", "2": "1"}
    # named classes keep the order the user wrote
    m = LabelMapper(remap="5,6:old 0,1:young 2,3,4:middle")
    assert m.classes() == ["old", "young", "middle"]
    for bad in ("0,1-0", "0,1:", ":2", "0:1 0:2", "   "):
        with pytest.raises(ConfigError):
            parse_remap(bad)
    with pytest.raises(ConfigError, match="either --remap or --bins"):
        LabelMapper(remap="0:0", bins="10")


def test_bins_edges_and_width():
    b = LabelMapper(bins="18,25,30,40,inf")
    assert [b.map(a) for a in (18, 24, 24.99, 25, 29, 30, 39, 40, 54, 99)] == [
        "18-24", "18-24", "18-24", "25-29", "25-29", "30-39", "30-39", "40+", "40+", "40+"]
    assert b.map(17) is None and b.why(17) == "label outside bins"
    assert b.map("n/a") is None and b.why("n/a") == "missing label"
    assert b.map("abc") is None and b.why("abc") == "label not a number (--bins)"
    assert b.classes() == ["18-24", "25-29", "30-39", "40+"]
    assert b.ordinal_hint is True
    d = LabelMapper(bins="10")
    assert [d.map(a) for a in (10, 19, 20, 79, 5)] == ["10", "10", "20", "70", "0"]
    assert d.classes(["70", "10", "20"]) == ["10", "20", "70"]
    assert parse_bins("-inf,30,inf").classes() == ["<30", "30+"]
    assert parse_bins("0,0.5,1").classes() == ["[0, 0.5)", "[0.5, 1)"]
    for bad in ("30,20", "x,1", "0", "-5", ""):
        with pytest.raises(ConfigError):
            parse_bins(bad)


def test_class_order_is_numeric_aware():
    assert sort_classes(["70", "10", "9", "20", "100"]) == ["9", "10", "20", "70", "100"]
    assert sort_classes(["2.5", "10", "-1"]) == ["-1", "2.5", "10"]
    assert sort_classes(["b", "a", "C"]) == ["a", "b", "C"]
    assert sort_classes(["grade10", "grade2", "grade1"]) == ["grade1", "grade2", "grade10"]
    assert LabelMapper().classes(["80", "20", "30"]) == ["20", "30", "80"]


def test_normalise_label():
    assert normalise_label(3.0) == "3"
    assert normalise_label("3.50") == "3.5"
    assert normalise_label(float("nan")) == ""
    assert normalise_label("  old ") == "old"
    assert normalise_label("이마") == "이마"
