"""optiscope: measure why training a neural network is hard, and say what to try.

The public API is what ``__all__`` lists; everything else lives in private modules.
"""

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
    "CriticalPoint",
    "DenseOperator",
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
    "SpectralDensity",
    "SymmetryError",
    "TraceEstimate",
    "TrainingModeError",
    "__version__",
    "align_units",
    "critical_point",
    "hessian_diagonal",
    "hessian_eigenvalues",
    "hessian_trace",
    "hidden_state",
    "hutchinson_trace",
    "hutchpp_trace",
    "interpolate",
    "krylov_trace",
    "lanczos",
    "permute_units",
    "read_records",
    "rescale_units",
    "spectral_density",
    "unit_counts",
]
