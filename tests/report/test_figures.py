"""The report's figures: drawn once per (figure, data) in a process, however often the report is rebuilt."""

from __future__ import annotations

from edgenas.report import figures


def test_the_same_data_is_drawn_once_and_other_data_again():
    calls: list[int] = []

    @figures.remembered
    def draw(values: list[float], title: str) -> bytes:
        calls.append(len(values))
        return f"{title}:{sum(values)}".encode()

    assert draw([1.0, 2.0], "a") == draw([1.0, 2.0], "a") == b"a:3.0"
    assert calls == [2]  # the second call was not drawn
    assert draw([1.0, 2.0, 3.0], "a") == b"a:6.0" and draw([1.0, 2.0], title="b") == b"b:3.0"
    assert calls == [2, 3, 2]


def test_the_kept_figures_are_bounded_oldest_first(monkeypatch):
    monkeypatch.setattr(figures, "REMEMBERED_FIGURES", 2)
    monkeypatch.setattr(figures, "_drawn", type(figures._drawn)())
    calls: list[int] = []

    @figures.remembered
    def draw(n: int) -> bytes:
        calls.append(n)
        return bytes([n])

    for n in (1, 2, 3, 1):  # 1 was dropped when 3 came in: drawn again
        draw(n)
    assert calls == [1, 2, 3, 1] and len(figures._drawn) == 2


def test_a_real_figure_is_a_png_and_repeats_byte_for_byte():
    rows = [{"role": "found", "top1": 40.0, "measured_ms": 1.0}, {"role": "random", "top1": 35.0, "measured_ms": 1.1}]
    png = figures.baseline(rows, 3)
    assert png.startswith(b"\x89PNG") and figures.baseline(rows, 3) is png
