"""The hand-in report: the document built from the run files (`build`), the sweep tables and
figures (`sweep`, `sweep_plots`), the notes (`notes`) and the Markdown/PDF renderer (`render`).

The face is lazy: a name loads its module on first use, so the declarations (`config`) load
without torch and `hw0 --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hw0cli.lazy import face

if TYPE_CHECKING:
    from hw0cli.report.build import ReportConfig as ReportConfig
    from hw0cli.report.build import ReportResult as ReportResult
    from hw0cli.report.build import run_report as run_report
    from hw0cli.report.sweep import sweep_memberships as sweep_memberships
    from hw0cli.report.sweep import sweep_summary as sweep_summary

_EXPORTS = {
    "ReportConfig": "build",
    "ReportResult": "build",
    "run_report": "build",
    "sweep_memberships": "sweep",
    "sweep_summary": "sweep",
}
__all__ = sorted(_EXPORTS)

__getattr__ = face(__name__, _EXPORTS)
