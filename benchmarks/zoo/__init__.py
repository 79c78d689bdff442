"""The calibration zoo: training runs built by construction to show one challenge of Deep
Learning sec. 8.2, and healthy controls that must show none (benchmarks/verdicts.py runs them).

A :class:`Case` is a factory ``build(seed) -> Experiment`` with the challenge planted in it
(``challenge``; None for a control), its model family and optimizer, the seed it runs at, and
``split``: ``"tune"`` for the cases the detectors' thresholds were set on, ``"held"`` for those
kept aside until the end (other seeds, and for each challenge a family not used while tuning),
``"final"`` for a second held-out set written after the held split had been seen: new
constructions, new data and new optimizers, run once, at the end; ``"final2"`` for a third,
written after the final split had been seen, on the challenge it missed (inexact gradients,
down to batches of one sample) with small-batch controls; ``"final3"`` for a fourth, on the
same challenge, written after final2 had been seen; ``"final4"`` for a fifth, after final3;
``"final5"`` for a sixth, after final4; ``"final6"`` for a seventh, after final5;
``"final7"`` for an eighth, after final6, most of its runs under a learning-rate schedule that
ends low; ``"final8"`` for a ninth, after final7, on cliffs and ill-conditioning with
small-batch controls; ``"final9"`` for a tenth, after final8, on the same challenges with new
constructions; ``"final10"`` for an eleventh, after final9, on inexact gradients again (several
runs on a noise floor that looks converged) with small-batch controls; ``"final11"`` for a
twelfth, after final10, on inexact gradients with new data (heavy-tailed inputs, a large
vocabulary, noisy shapes) and small-batch controls; ``"final12"`` for a thirteenth, after
final11, of healthy controls only (the runs people train, every family, optimizer and common
schedule, half on small batches) to measure false alarms; ``"final13"`` for a fourteenth,
after final12, of every measurable challenge (three planted cases each) and twenty healthy
controls, to measure the final rules on all of them in one run; ``"final14"`` for a
fifteenth, after final13, of every measurable challenge again (four planted cases each for
ill-conditioning and cliffs, three for the others) and twenty healthy controls.
``why`` says how the pathology is planted and how it was checked by hand.

Every run is small enough for a 2-core machine: ``optiscope diagnose`` on it takes well under
60 s. Data ship with scikit-learn (digits) or are generated from a seed; never downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from optiscope import Experiment

FAMILIES = ("mlp", "cnn", "transformer", "rnn")
SPLITS = (
    "tune",
    "held",
    "fresh",
    "final",
    "final2",
    "final3",
    "final4",
    "final5",
    "final6",
    "final7",
    "final8",
    "final9",
    "final10",
    "final11",
    "final12",
    "final13",
    "final14",
)


@dataclass(frozen=True)
class Case:
    name: str
    challenge: str | None  # one of optiscope.diagnosis.CHALLENGES, None: a healthy control
    family: str
    optimizer: str  # "sgd", "momentum", "adam", "adamw" (with a schedule or clipping: say so)
    split: str
    build: Callable[[int], Experiment]
    seed: int = 0
    why: str = ""
    any_seed: bool = True  # False: the pathology is planted at this seed only (fresh skips it)

    def __post_init__(self) -> None:
        assert self.family in FAMILIES, self.family
        assert self.split in SPLITS, self.split


def cases() -> list[Case]:
    """Every case of the zoo, tune and held-out, in a fixed order."""
    from . import (
        final2,
        final3,
        final4,
        final5,
        final6,
        final7,
        final8,
        final9,
        final10,
        final11,
        final12,
        final13,
        final13_controls,
        final13_more,
        final14_controls,
        final14_extra,
        final14_more,
        final_mlp_cnn,
        final_sequence,
        mlp_cnn,
        sequence,
    )

    found = [
        *mlp_cnn.CASES,
        *sequence.CASES,
        *final_mlp_cnn.CASES,
        *final_sequence.CASES,
        *final2.CASES,
        *final3.CASES,
        *final4.CASES,
        *final5.CASES,
        *final6.CASES,
        *final7.CASES,
        *final8.CASES,
        *final9.CASES,
        *final10.CASES,
        *final11.CASES,
        *final12.CASES,
        *final13.CASES,
        *final13_more.CASES,
        *final13_controls.CASES,
        *final14_more.CASES,
        *final14_extra.CASES,
        *final14_controls.CASES,
    ]
    names = [c.name for c in found]
    assert len(names) == len(set(names)), "case names must be unique"
    return found
