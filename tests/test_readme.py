"""README is the front door: short, the three commands first, every docs page one link away."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)|<img src=\"([^\"]+)\"")


def test_first_screen_has_install_sizes_cpu_line_and_test_times():
    first = "\n".join(README.read_text().splitlines()[:24])
    assert "~5 GB" in first  # the default (GPU) install, said
    cpu = [ln for ln in first.splitlines() if "download.pytorch.org/whl/cpu" in ln]
    assert len(cpu) == 1 and "pip install" in cpu[0]  # the CPU-only install in one line
    tests = next(ln for ln in first.splitlines() if "python -m pytest" in ln)
    assert "min on 2 CPU cores" in tests and '-m "not slow"' in tests


def test_readme_is_at_most_200_lines():
    assert len(README.read_text().splitlines()) <= 200


def test_three_commands_in_first_screen():
    first = README.read_text().splitlines()[:40]
    assert any("pip install -e '.[dev]'" in ln for ln in first)  # install (CI runs this)
    assert any("hw0 all --preset" in ln for ln in first)  # run
    assert any(ln.startswith("python -m pytest -q") for ln in first)  # test (CI runs this)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    lines = page.read_text().splitlines()
    return {slug(ln.lstrip("#")) for ln in lines if re.match(r"#{1,6} ", ln)}


def relative_links(page: Path) -> list[str]:
    found = [a or b for a, b in LINK.findall(page.read_text())]
    return [t for t in found if not re.match(r"[a-z]+:", t)]


def test_slug_matches_github():
    assert slug(" The warm-up's play-around: `hw0 sweep`") == "the-warm-ups-play-around-hw0-sweep"


def test_every_relative_link_resolves():
    broken = []
    for page in [README, *DOCS]:
        for target in relative_links(page):
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.is_file() or (anchor and anchor not in anchors(dest)):
                broken.append(f"{page.name}: {target}")
    assert not broken, broken


def test_every_docs_page_is_one_link_from_the_readme():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in relative_links(README)}
    assert DOCS and not [p.name for p in DOCS if p.resolve() not in linked]


def test_every_source_path_the_docs_name_exists():
    """A page that names a module, test or script names one that is there (after a move too)."""
    named = re.compile(r"\b(?:hw0cli|tests|scripts)/[\w/.-]+\.(?:py|sh|json)\b")
    stale = [f"{page.name}: {m}" for page in [README, *DOCS]
             for m in sorted(set(named.findall(page.read_text()))) if not (ROOT / m).exists()]
    assert not stale, stale
