"""The report's layout, measured as rendered: no text beyond the page (titles wrap, wide tables
shrink then wrap), and no page but the last left mostly blank."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
from matplotlib.backends.backend_pdf import PdfPages
from pypdf import PdfReader

from hw0cli.report import render
from hw0cli.report.render import Section


def png(path: Path, w: float, h: float) -> Path:
    fig, ax = plt.subplots(figsize=(w, h))
    ax.plot([0, 1], [1, 0])
    ax.set_title("a figure")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def sections(tmp_path: Path) -> list[Section]:
    long_title = ("Warm-up: what changes when you change batchnorm, lr, width, init and the "
                  "schedule (sweep bn-study-quick-with-a-long-name)")
    a = Section(long_title)
    a.text("A paragraph " * 60, "An unbreakable /very/long/path/" + "x" * 140,
           "Set $HW0_DATA_DIR and $HW0_OUT, or pass --data-dir and --out.")
    a.add_table([f"column {i}" for i in range(14)],
                [[f"value {i}.{j}" for i in range(14)] for j in range(5)])
    for k in range(4):
        a.figure(png(tmp_path / f"f{k}.png", 6.5, 4), f"Figure {k}: " + "caption " * 30)
        a.text("Some text between the figures. " * 5)
    b = Section("Problem 2: random labels")
    b.figure(png(tmp_path / "wide.png", 11, 4), "A wide figure.")
    b.figure(png(tmp_path / "tall.png", 6, 8), "A tall figure.")
    b.text("The end.")
    return [a, b]


@pytest.fixture
def rendered(tmp_path, monkeypatch):
    """Render the sections; every page's texts with their extents (as fractions of the
    page), measured just before the page is saved, and how full each page is."""
    pages: list[list[tuple[str, tuple[float, float, float, float]]]] = []
    real = render._PdfPages.close_page

    def measure(self):
        if self.fig is not None:
            r, box = self.fig.canvas.get_renderer(), self.fig.bbox
            pages.append([(t.get_text(), (e.x0 / box.width, e.x1 / box.width,
                                          e.y0 / box.height, e.y1 / box.height))
                          for t in self.fig.texts for e in [t.get_window_extent(r)]])
        real(self)
    monkeypatch.setattr(render._PdfPages, "close_page", measure)
    with PdfPages(tmp_path / "r.pdf") as pdf:
        doc = render._PdfPages(pdf)
        render._render_into(doc, sections(tmp_path), ["Generated for a test."])
    return pages, doc.filled, tmp_path / "r.pdf"


def test_no_text_reaches_past_the_page(rendered):
    pages, _, pdf = rendered
    assert len(pages) == len(PdfReader(pdf).pages) >= 3
    for texts in pages:
        for text, (x0, x1, y0, y1) in texts:
            assert x0 >= 0 and x1 <= render.RIGHT + 1e-3, (text, x1)
            assert y0 >= 0 and y1 <= 1, (text, y0, y1)
    words = " ".join(t for texts in pages for t, _ in texts).split()
    title = "(sweep bn-study-quick-with-a-long-name)"
    assert title in words or title in " ".join(words)  # wrapped, every word kept
    assert "x" * 50 in "".join(words)  # the unbreakable line is folded, not cut
    assert r"Set \$HW0_DATA_DIR and \$HW0_OUT," in " ".join(words)  # dollars, not math


def test_no_page_but_the_last_is_mostly_blank(rendered):
    _, filled, _ = rendered
    assert all(f >= 0.5 for f in filled[:-1]), filled
