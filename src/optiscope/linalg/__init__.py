"""Curvature as linear operators, and the estimators that read them.

Nothing here knows of ``nn.Module``: an estimator accepts a dense symmetric tensor or a
:class:`LinearOperator`, so tests hand it an exact matrix and compare.
"""

from optiscope.linalg.hutchpp import TraceEstimate, hutchinson_trace, hutchpp_trace, krylov_trace
from optiscope.linalg.lanczos import EigenResult, lanczos, lanczos_tridiagonal
from optiscope.linalg.operators import DenseOperator, LinearOperator, as_operator
from optiscope.linalg.slq import SpectralDensity, slq_density

__all__ = [
    "DenseOperator",
    "EigenResult",
    "LinearOperator",
    "SpectralDensity",
    "TraceEstimate",
    "as_operator",
    "hutchinson_trace",
    "hutchpp_trace",
    "krylov_trace",
    "lanczos",
    "lanczos_tridiagonal",
    "slq_density",
]
