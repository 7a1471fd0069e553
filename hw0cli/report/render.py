"""The report's layout: sections of text, tables and figures, flowed onto A4 PDF pages
(matplotlib PdfPages, no LaTeX) or written as Markdown with PNGs. Knows nothing of what the
sections say; `hw0cli.report` fills them from the results."""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from hw0cli import atomic
from hw0cli.atomic import atomic_path

PAGE = (8.27, 11.69)  # A4 portrait, inches


@dataclass
class Block:
    """A piece of a section: text lines (monospace in the PDF) or a figure."""

    kind: str  # "text" | "table" | "figure"
    lines: list[str] = field(default_factory=list)
    image: Path | None = None
    caption: str = ""
    table: tuple[list[str], list[list[str]]] | None = None


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    present: bool = True

    def text(self, *paras: str) -> None:
        for p in paras:
            self.blocks.append(Block("text", [p]))

    def add_table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(Block("table", table=(header, rows)))

    def figure(self, path: Path | None, caption: str) -> None:
        if path is not None and Path(path).exists():
            self.blocks.append(Block("figure", image=Path(path), caption=caption))


def _table_lines(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*header), fmt.format(*["-" * w for w in widths]),
            *[fmt.format(*r) for r in rows]]


def _plain(text: str) -> str:
    """Text as written: a pair of $ (as in $HW0_OUT) would start matplotlib's math mode."""
    return text.replace("$", r"\$")


def _wrap(text: str, width: int = 100) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def render_pdf(sections: list[Section], path: Path, title_lines: list[str]) -> int:
    """Write the PDF atomically, flowing text, tables and figures down A4 pages; returns the
    page count."""
    with atomic_path(path, keep_suffix=True) as tmp:
        return _render_pdf(sections, tmp, title_lines)


LINE_H, TOP, BOTTOM, LEFT = 0.0155, 0.955, 0.04, 0.06  # page fractions
RIGHT = 0.96  # no text beyond this fraction of the page's width
MIN_TABLE_SIZE = 5.0  # a wide table shrinks to this font size, then wraps
NEW_PAGE_BELOW = 0.22  # a section starts on a new page only when less than this is left
MIN_FIGURE_SCALE = 0.55  # a figure shrinks this far to fill a page before it moves on
FIGURE_DPI, FIGURE_SCALE = 130, 0.85  # the PNGs' resolution; their size on the page


class _PdfPages:
    """Lines and figures flowed down A4 pages; a full page is saved and a new one started
    (with a "continued" header) when the next item does not fit. Every line is measured as
    rendered: one wider than the page wraps (a table's font shrinks first), so nothing is cut;
    a figure shrinks to fill the rest of a page before it moves to the next, so no page but
    the last is left mostly blank. `filled` holds each saved page's used fraction."""

    def __init__(self, pdf: PdfPages) -> None:
        self.pdf, self.fig, self.y, self.pages = pdf, None, TOP, 0
        self.filled: list[float] = []

    def new_page(self, header: str = "") -> None:
        self.close_page()
        self.fig = plt.figure(figsize=PAGE)
        self.y = TOP
        self.pages += 1
        if header:
            for ln in self.fit(header, 9, mono=False)[0]:
                self.fig.text(LEFT, self.y, _plain(ln), fontsize=9, color="gray", va="top")
                self.y -= LINE_H * 1.15
            self.y -= LINE_H * 0.45

    def close_page(self) -> None:
        if self.fig is not None:
            self.filled.append((TOP - self.y) / (TOP - BOTTOM))
            self.pdf.savefig(self.fig)
            plt.close(self.fig)
            self.fig = None

    def left(self) -> float:
        return self.y - BOTTOM

    def need(self, height: float, header: str) -> None:
        if self.y - height < BOTTOM:
            self.new_page(header)

    def _width(self, line: str, size: float, weight: str, mono: bool) -> float:
        """The line's rendered width as a fraction of the page's."""
        t = self.fig.text(0, 0, _plain(line), fontsize=size, weight=weight,
                          family="monospace" if mono else None)
        width = t.get_window_extent(self.fig.canvas.get_renderer()).width
        t.remove()
        return width / self.fig.bbox.width

    def fit(self, line: str, size: float, weight: str = "normal", mono: bool = True,
            shrink: bool = False) -> tuple[list[str], float]:
        """`line` as lines that fit the page's width at a font size: a table line (`shrink`)
        first gets a smaller font, down to MIN_TABLE_SIZE; then it wraps."""
        room = RIGHT - LEFT
        width = self._width(line, size, weight, mono)
        if width <= room:
            return [line], size
        if shrink and width * MIN_TABLE_SIZE / size <= room:
            return [line], size * room / width * 0.98
        size = MIN_TABLE_SIZE if shrink else size
        chars = max(10, int(len(line) * room / self._width(line, size, weight, mono)))
        while True:
            lines = _wrap(line, chars)
            if chars <= 10 or all(self._width(x, size, weight, mono) <= room for x in lines):
                return lines, size
            chars -= max(1, chars // 20)

    def text(self, line: str, size: float = 8.0, weight: str = "normal", mono: bool = True,
             header: str = "") -> None:
        if self.fig is None:
            self.new_page(header)
        lines, size = self.fit(line, size, weight, mono)
        for ln in lines:
            self._line(ln, size, weight, mono, header)

    def _line(self, line: str, size: float, weight: str, mono: bool, header: str) -> None:
        h = LINE_H * size / 8.0
        self.need(h, header)
        self.fig.text(LEFT, self.y, _plain(line), fontsize=size, weight=weight, va="top",
                      family="monospace" if mono else None)
        self.y -= h

    def table(self, lines: list[str], header: str) -> None:
        """Aligned lines at one font size: the widest line's fit, so columns stay aligned."""
        size = min((self.fit(ln, 7.0, shrink=True)[1] for ln in lines), default=7.0)
        for ln in lines:
            for part in self.fit(ln, size)[0]:
                self._line(part, size, "normal", True, header)

    def figure(self, image: Path, caption: str, header: str) -> None:
        img = plt.imread(image)
        # a little below the size it was drawn at (hw0cli.plots saves at FIGURE_DPI): fonts
        # stay readable and pages hold more
        width = min(RIGHT - LEFT - 0.02, FIGURE_SCALE * img.shape[1] / FIGURE_DPI / PAGE[0])
        height = width * (PAGE[0] / PAGE[1]) * img.shape[0] / img.shape[1]
        if height > 0.6:
            width, height = width * 0.6 / height, 0.6
        caption_h = LINE_H * (len(_wrap(caption, 110)) + 1)
        room = self.left() - caption_h
        if height > room:
            if room >= MIN_FIGURE_SCALE * height:  # shrink to fill this page
                width, height = width * room / height, room
            else:
                self.new_page(header)
        ax = self.fig.add_axes((LEFT + (RIGHT - LEFT - width) / 2, self.y - height, width,
                                height))
        ax.imshow(img)
        ax.axis("off")
        self.y -= height + LINE_H * 0.4
        self.text(caption, 7.5, mono=False, header=header)


def _render_pdf(sections: list[Section], tmp: Path, title_lines: list[str]) -> int:
    with PdfPages(tmp) as pdf:
        doc = _PdfPages(pdf)
        _render_into(doc, sections, title_lines)
    return doc.pages


def _render_into(doc: _PdfPages, sections: list[Section], title_lines: list[str]) -> None:
    """The title, the contents, then every section, flowed on (a section starts a page of
    its own only where the page has little room left)."""
    doc.new_page()
    doc.text("hw0: results", 18, "bold", mono=False)
    doc.y -= LINE_H
    for ln in title_lines:
        doc.text(ln)
    doc.y -= LINE_H
    doc.text("Contents", 12, "bold", mono=False)
    for i, sec in enumerate(sections):
        doc.text(f"{i + 1}. {sec.title}" + ("" if sec.present else "  (missing: see below)"))
    for sec in sections:
        if doc.left() < NEW_PAGE_BELOW:
            doc.new_page()
        else:
            doc.y -= LINE_H * 1.5
        doc.text(sec.title, 15, "bold", mono=False)
        doc.y -= LINE_H * 0.5
        cont = f"{sec.title} (continued)"
        for b in sec.blocks:
            if b.kind == "figure" and b.image is not None:
                doc.figure(b.image, b.caption, cont)
            elif b.kind == "table" and b.table:
                doc.table(_table_lines(*b.table), cont)
            else:
                for ln in b.lines:
                    doc.text(ln, 8.0, header=cont)
            doc.y -= LINE_H * 0.8
    doc.close_page()


def render_md(sections: list[Section], path: Path, title_lines: list[str]) -> None:
    figdir = path.parent / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    out = ["# hw0: results", "", *[f"{ln}  " for ln in title_lines], ""]
    for sec in sections:
        out += [f"## {sec.title}", ""]
        for b in sec.blocks:
            if b.kind == "text":
                out += (["```", *b.lines, "```"] if len(b.lines) > 1 else b.lines) + [""]
            elif b.kind == "table" and b.table:
                header, rows = b.table
                out += ["| " + " | ".join(header) + " |",
                        "|" + "|".join("---" for _ in header) + "|",
                        *["| " + " | ".join(r) + " |" for r in rows], ""]
            elif b.image is not None:
                dst = figdir / b.image.name
                if b.image.resolve() != dst.resolve():
                    shutil.copyfile(b.image, dst)
                out += [f"![{b.caption}](figures/{dst.name})", "", f"*{b.caption}*", ""]
    atomic.write_text(path, "\n".join(out))
