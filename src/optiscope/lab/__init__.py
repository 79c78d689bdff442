"""The lab: every claim of Deep Learning sec. 8.2 reproduced on a small problem and checked
against a stated criterion. ``names()`` lists the experiments, ``run(name)`` runs one,
``run_all()`` all of them, ``entry(name)`` tells what one claims and ``write_index`` writes the
page of a set of results (``optiscope lab list`` and ``optiscope lab run NAME|all`` do the same).
Built from optiscope's public API only.
"""

from optiscope.lab._framework import Entry, LabError, Result
from optiscope.lab._runner import entry, names, run, run_all, write_index

__all__ = ["Entry", "LabError", "Result", "entry", "names", "run", "run_all", "write_index"]
