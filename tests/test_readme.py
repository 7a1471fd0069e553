"""README's first screen tells a new user what the install costs and how long the tests take."""

from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_first_screen_has_install_sizes_cpu_line_and_test_times():
    first = "\n".join(README.read_text().splitlines()[:24])
    assert "~5 GB" in first  # the default (GPU) install, said
    cpu = [ln for ln in first.splitlines() if "download.pytorch.org/whl/cpu" in ln]
    assert len(cpu) == 1 and "pip install" in cpu[0]  # the CPU-only install in one line
    tests = next(ln for ln in first.splitlines() if "python -m pytest" in ln)
    assert "min on 2 CPU cores" in tests and '-m "not slow"' in tests
