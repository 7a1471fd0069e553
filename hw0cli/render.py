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


def _wrap(text: str, width: int = 100) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def render_pdf(sections: list[Section], path: Path, title_lines: list[str]) -> int:
    """Write the PDF atomically, flowing text, tables and figures down A4 pages; returns the
    page count."""
    with atomic_path(path, keep_suffix=True) as tmp:
        return _render_pdf(sections, tmp, title_lines)


LINE_H, TOP, BOTTOM, LEFT = 0.0155, 0.955, 0.04, 0.06  # page fractions


class _PdfPages:
    """Lines and figures flowed down A4 pages; a full page is saved and a new one started
    (with a "continued" header) when the next item does not fit."""

    def __init__(self, pdf: PdfPages) -> None:
        self.pdf, self.fig, self.y, self.pages = pdf, None, TOP, 0

    def new_page(self, header: str = "") -> None:
        self.close_page()
        self.fig = plt.figure(figsize=PAGE)
        self.y = TOP
        self.pages += 1
        if header:
            self.fig.text(LEFT, self.y, header, fontsize=9, color="gray", va="top")
            self.y -= LINE_H * 1.6

    def close_page(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            plt.close(self.fig)
            self.fig = None

    def need(self, height: float, header: str) -> None:
        if self.y - height < BOTTOM:
            self.new_page(header)

    def text(self, line: str, size: float = 8.0, weight: str = "normal", mono: bool = True,
             header: str = "") -> None:
        h = LINE_H * size / 8.0
        self.need(h, header)
        self.fig.text(LEFT, self.y, line, fontsize=size, weight=weight, va="top",
                      family="monospace" if mono else None)
        self.y -= h

    def figure(self, image: Path, caption: str, header: str) -> None:
        img = plt.imread(image)
        width = 0.88
        height = width * (PAGE[0] / PAGE[1]) * img.shape[0] / img.shape[1]
        if height > 0.6:
            width, height = width * 0.6 / height, 0.6
        lines = _wrap(caption, 110)
        self.need(height + LINE_H * (len(lines) + 1), header)
        ax = self.fig.add_axes((LEFT + (0.88 - width) / 2, self.y - height, width, height))
        ax.imshow(img)
        ax.axis("off")
        self.y -= height + LINE_H * 0.4
        for ln in lines:
            self.text(ln, 7.5, mono=False, header=header)


def _render_pdf(sections: list[Section], tmp: Path, title_lines: list[str]) -> int:
    with PdfPages(tmp) as pdf:
        doc = _PdfPages(pdf)
        doc.new_page()
        doc.text("hw0: results", 18, "bold", mono=False)
        doc.y -= LINE_H
        for ln in title_lines:
            for w in _wrap(ln, 100):
                doc.text(w)
        doc.y -= LINE_H
        doc.text("Contents", 12, "bold", mono=False)
        for i, sec in enumerate(sections):
            doc.text(f"{i + 1}. {sec.title}" + ("" if sec.present else "  (missing: see below)"))
        for sec in sections:
            doc.new_page()
            doc.text(sec.title, 15, "bold", mono=False)
            doc.y -= LINE_H * 0.5
            cont = f"{sec.title} (continued)"
            for b in sec.blocks:
                if b.kind == "figure" and b.image is not None:
                    doc.figure(b.image, b.caption, cont)
                else:
                    lines = (_table_lines(*b.table) if b.kind == "table" and b.table
                             else [w for ln in b.lines for w in _wrap(ln)])
                    for ln in lines:
                        doc.text(ln, 7.0 if b.kind == "table" else 8.0, header=cont)
                doc.y -= LINE_H * 0.8
        doc.close_page()
    return doc.pages


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
