"""optiscope: measure why training a neural network is hard, and say what to try.

The public API is what ``__all__`` lists; everything else lives in private modules.
"""

from optiscope._checkpoint import CheckpointError, load_checkpoint
from optiscope._connect import Connection, bezier, connect
from optiscope._curvature import (
    CriticalPoint,
    critical_point,
    hessian_diagonal,
    hessian_eigenvalues,
    hessian_trace,
    spectral_density,
)
from optiscope._errors import NonFiniteError, OptiscopeError, ProblemError, TrainingModeError
from optiscope._experiment import Experiment, ExperimentError
from optiscope._landscape import Interpolation, LandscapeError, interpolate
from optiscope._linalg import (
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
from optiscope._monitor import Monitor, MonitorError
from optiscope._problem import GGNOperator, HessianOperator, Problem
from optiscope._records import Records, RecordsError, read_records
from optiscope._recurrent import hidden_state
from optiscope._report import ReportError, write_report
from optiscope._restarts import Restarts, RestartsError, restarts
from optiscope._surface import (
    Directions,
    Surface,
    Trajectory,
    hessian_directions,
    random_directions,
    surface,
    trajectory_directions,
)
from optiscope._symmetry import (
    Alignment,
    SymmetryError,
    align_units,
    permute_units,
    rescale_units,
    unit_counts,
)

__version__ = "0.1.0"

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
