"""optiscope: measure why training a neural network is hard, and say what to try.

The public API is what ``__all__`` lists (docs/api.md has it on one page), plus two public
subpackages: :mod:`optiscope.linalg` (curvature as linear operators and its estimators) and
:mod:`optiscope.lab` (the chapter's experiments). Everything else is internal and may change.

>>> import optiscope
>>> findings = optiscope.diagnose([{"type": "step", "step": 0, "values": {"loss": 2.3}}])
>>> [(f.challenge, f.severity.value) for f in findings][:2]
[('ill-conditioning', 'info'), ('local-minima', 'info')]
"""

from optiscope.core.errors import NonFiniteError, OptiscopeError, ProblemError, TrainingModeError
from optiscope.core.version import __version__
from optiscope.diagnosis import Finding, Severity, diagnose
from optiscope.landscape.connect import bezier, connect
from optiscope.landscape.line import interpolate
from optiscope.landscape.restarts import restarts
from optiscope.landscape.surface import (
    hessian_directions,
    random_directions,
    surface,
    trajectory_directions,
)
from optiscope.landscape.symmetry import align_units, permute_units, rescale_units, unit_counts
from optiscope.monitor import Monitor
from optiscope.problem.problem import Problem, flat_parameters
from optiscope.problem.recurrent import hidden_state
from optiscope.quantities.blocks import BlockSpectra, blockwise_spectra
from optiscope.quantities.curvature import (
    critical_point,
    hessian_diagonal,
    hessian_eigenvalues,
    hessian_trace,
    spectral_density,
)
from optiscope.records.log import Records, read_records
from optiscope.runner import run_experiment
from optiscope.runner.report import write_report
from optiscope.training.checkpoint import load_checkpoint
from optiscope.training.experiment import Experiment
from optiscope.training.loading import load_experiment
from optiscope.training.loop import train

__all__ = [
    "BlockSpectra",
    "Experiment",
    "Finding",
    "Monitor",
    "NonFiniteError",
    "OptiscopeError",
    "Problem",
    "ProblemError",
    "Records",
    "Severity",
    "TrainingModeError",
    "__version__",
    "align_units",
    "bezier",
    "blockwise_spectra",
    "connect",
    "critical_point",
    "diagnose",
    "flat_parameters",
    "hessian_diagonal",
    "hessian_directions",
    "hessian_eigenvalues",
    "hessian_trace",
    "hidden_state",
    "interpolate",
    "load_checkpoint",
    "load_experiment",
    "permute_units",
    "random_directions",
    "read_records",
    "rescale_units",
    "restarts",
    "run_experiment",
    "spectral_density",
    "surface",
    "train",
    "trajectory_directions",
    "unit_counts",
    "write_report",
]
