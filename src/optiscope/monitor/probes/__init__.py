"""The probes the Monitor schedules, in the order they measure within a step.

A new quantity is one file in this folder and one line here (see docs/architecture.md).
"""

from optiscope.monitor.probes.base import Probe
from optiscope.monitor.probes.curvature import Curvature
from optiscope.monitor.probes.layer_gradients import LayerGradients
from optiscope.monitor.probes.noise import Noise
from optiscope.monitor.probes.recurrent import Recurrent
from optiscope.monitor.probes.sharpness import Sharpness
from optiscope.monitor.probes.update import Update

PROBES: tuple[type[Probe], ...] = (
    Update,
    LayerGradients,
    Noise,
    Curvature,
    Sharpness,
    Recurrent,
)

__all__ = ["PROBES", "Probe"]
