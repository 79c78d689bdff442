"""The lab: every claim of Deep Learning sec. 8.2 reproduced on a small problem and checked
against a stated criterion. ``names()`` lists the experiments, ``run(name)`` runs one,
``run_all()`` all of them (``optiscope lab list`` and ``optiscope lab run NAME|all`` do the same).
Built from optiscope's public API only.
"""

from optiscope.lab._framework import LabError, Result
from optiscope.lab._runner import names, run, run_all

__all__ = ["LabError", "Result", "names", "run", "run_all"]
