"""optiscope: measure why training a neural network is hard, and say what to try.

The public API is what ``__all__`` lists; everything else lives in private modules.
"""

from optiscope.core.errors import NonFiniteError, OptiscopeError, ProblemError, TrainingModeError
from optiscope.core.version import __version__
from optiscope.landscape.connect import Connection, bezier, connect
from optiscope.landscape.line import Interpolation, LandscapeError, interpolate
from optiscope.landscape.restarts import Restarts, RestartsError, restarts
from optiscope.landscape.surface import (
    Directions,
    Surface,
    Trajectory,
    hessian_directions,
    random_directions,
    surface,
    trajectory_directions,
)
from optiscope.landscape.symmetry import (
    Alignment,
    SymmetryError,
    align_units,
    permute_units,
    rescale_units,
    unit_counts,
)
from optiscope.linalg import (
    DenseOperator,
    EigenResult,
    LinearOperator,
    SpectralDensity,
    TraceEstimate,
    hutchinson_trace,
    hutchpp_trace,
    krylov_trace,
    lanczos,
)
from optiscope.monitor.monitor import Monitor, MonitorError
from optiscope.problem.problem import GGNOperator, HessianOperator, Problem
from optiscope.problem.recurrent import hidden_state
from optiscope.quantities.curvature import (
    CriticalPoint,
    critical_point,
    hessian_diagonal,
    hessian_eigenvalues,
    hessian_trace,
    spectral_density,
)
from optiscope.records.log import Records, RecordsError, read_records
from optiscope.report.page import ReportError, write_report
from optiscope.training.checkpoint import CheckpointError, load_checkpoint
from optiscope.training.experiment import Experiment, ExperimentError

__all__ = [
    "Alignment",
    "CheckpointError",
    "Connection",
    "CriticalPoint",
    "DenseOperator",
    "Directions",
    "EigenResult",
    "Experiment",
    "ExperimentError",
    "GGNOperator",
    "HessianOperator",
    "Interpolation",
    "LandscapeError",
    "LinearOperator",
    "Monitor",
    "MonitorError",
    "NonFiniteError",
    "OptiscopeError",
    "Problem",
    "ProblemError",
    "Records",
    "RecordsError",
    "ReportError",
    "Restarts",
    "RestartsError",
    "SpectralDensity",
    "Surface",
    "SymmetryError",
    "TraceEstimate",
    "TrainingModeError",
    "Trajectory",
    "__version__",
    "align_units",
    "bezier",
    "connect",
    "critical_point",
    "hessian_diagonal",
    "hessian_directions",
    "hessian_eigenvalues",
    "hessian_trace",
    "hidden_state",
    "hutchinson_trace",
    "hutchpp_trace",
    "interpolate",
    "krylov_trace",
    "lanczos",
    "load_checkpoint",
    "permute_units",
    "random_directions",
    "read_records",
    "rescale_units",
    "restarts",
    "spectral_density",
    "surface",
    "trajectory_directions",
    "unit_counts",
    "write_report",
]
