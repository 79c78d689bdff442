"""The main job: run an experiment under the Monitor, analyse its end, diagnose."""

from optiscope.runner.run import RunResult, run_experiment

__all__ = ["RunResult", "run_experiment"]
