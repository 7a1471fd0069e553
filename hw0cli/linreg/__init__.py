"""Problem 3: least squares, gradient descent, SGD, random features and kernel regression on
MNIST parity. The options (`config`), the solvers (`solvers`), a run (`run`), its typed summary
(`summary`) and the findings read from it (`findings`).

The face is lazy: a name loads its module on first use, so the declarations (`config`) load
without torch and `hw0 --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hw0cli.lazy import face

if TYPE_CHECKING:
    from hw0cli.linreg.config import MIN_NORM as MIN_NORM
    from hw0cli.linreg.config import LinregConfig as LinregConfig
    from hw0cli.linreg.config import linreg_args as linreg_args
    from hw0cli.linreg.config import linreg_id as linreg_id
    from hw0cli.linreg.config import validate as validate
    from hw0cli.linreg.findings import GD_FINDING as GD_FINDING
    from hw0cli.linreg.findings import describe as describe
    from hw0cli.linreg.findings import format_factor as format_factor
    from hw0cli.linreg.findings import problem_lines as problem_lines
    from hw0cli.linreg.findings import solution_rows as solution_rows
    from hw0cli.linreg.run import LinregResult as LinregResult
    from hw0cli.linreg.run import run_linreg as run_linreg
    from hw0cli.linreg.solvers import Problem as Problem
    from hw0cli.linreg.solvers import draw_indices as draw_indices
    from hw0cli.linreg.solvers import gradient_descent as gradient_descent
    from hw0cli.linreg.solvers import load_problem as load_problem
    from hw0cli.linreg.solvers import min_norm as min_norm
    from hw0cli.linreg.solvers import mse as mse
    from hw0cli.linreg.solvers import parity_labels as parity_labels
    from hw0cli.linreg.solvers import sgd as sgd
    from hw0cli.linreg.solvers import sign_accuracy as sign_accuracy
    from hw0cli.linreg.solvers import spectrum as spectrum
    from hw0cli.linreg.summary import Fit as Fit
    from hw0cli.linreg.summary import LinregSummary as LinregSummary

_EXPORTS = {
    "MIN_NORM": "config",
    "LinregConfig": "config",
    "linreg_args": "config",
    "linreg_id": "config",
    "validate": "config",
    "Fit": "summary",
    "LinregSummary": "summary",
    "Problem": "solvers",
    "draw_indices": "solvers",
    "gradient_descent": "solvers",
    "load_problem": "solvers",
    "min_norm": "solvers",
    "mse": "solvers",
    "parity_labels": "solvers",
    "sgd": "solvers",
    "sign_accuracy": "solvers",
    "spectrum": "solvers",
    "GD_FINDING": "findings",
    "describe": "findings",
    "format_factor": "findings",
    "problem_lines": "findings",
    "solution_rows": "findings",
    "LinregResult": "run",
    "run_linreg": "run",
}
__all__ = sorted(_EXPORTS)

__getattr__ = face(__name__, _EXPORTS)
