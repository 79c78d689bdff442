"""The records' schema: every record type, field and quantity name, spelled once.

A run's ``records.jsonl`` holds one JSON object per line. The first is the header; each later
one has a ``type``:

- ``step``: ``{"type": "step", "step": N, "values": {QUANTITY: number, ...}}``, one per
  optimizer step; the quantities below, each written by the probe that measures it.
- ``hidden_gradients``: ``{"step", "module", "cell", "norms"}``, the norm of dL/dh_t at every
  time step t of one recurrent module (its class in ``cell``).
- ``layer_gradients``: ``{"step", "names", "kinds", "norms"}``, the gradient norm of each
  layer (a module owning parameters directly), inputs first; names and kinds on the first only.
- ``layer_updates``: ``{"step", "names", "kinds", "norms"}``, the norm of each layer's update
  at the steps the update is measured, while per-layer gradients are recorded.
- ``analysis``: ``{"name": ANALYSIS, ...}``, a measurement of a point (the end of a run).
- ``event``: ``{"name": EVENT, "step", ...}``, something that happened (training stopped).
- ``probe_error``: ``{"step", "probe", "error"}``, a tier that failed at a step (the run went
  on without its measurement).

Probes, detectors, the report, the TensorBoard sink and the tests import these names; a rename
is one edit here and a typo is an ImportError.
"""

from __future__ import annotations

VERSION = 1  # the header's "schema": bumped when a reader of an older file would misread it

# Fields shared by record types.
TYPE = "type"
STEP = "step"
VALUES = "values"
NAME = "name"
MODULE = "module"
NORMS = "norms"
NAMES = "names"
KINDS = "kinds"  # the module classes of a layer_gradients record's layers (first record only)
CELL = "cell"  # a hidden_gradients record's module class (RNN, LSTM, GRU)

# Record types.
HEADER = "header"
STEP_RECORD = "step"
HIDDEN_GRADIENTS = "hidden_gradients"
LAYER_GRADIENTS = "layer_gradients"
LAYER_UPDATES = "layer_updates"
ANALYSIS = "analysis"
EVENT = "event"
PROBE_ERROR = "probe_error"
RECORD_TYPES = (
    HEADER,
    STEP_RECORD,
    HIDDEN_GRADIENTS,
    LAYER_GRADIENTS,
    LAYER_UPDATES,
    ANALYSIS,
    EVENT,
    PROBE_ERROR,
)
PROBE = "probe"  # the tier a probe_error names

# Header fields the writer owns: a user's header must not set them.
SCHEMA = "schema"
TIME = "time"
RUN_ID = "run_id"  # a new random id per run: findings and reports name the run they describe
RESERVED_HEADER = (TYPE, SCHEMA, TIME, RUN_ID)

# Step quantities. The cheap probe, every step:
LOSS = "loss"
GRAD_NORM = "grad_norm"
PARAM_NORM = "param_norm"
NONFINITE = "nonfinite"  # the names of the non-finite quantities of the step (a list)
SKIPPED = "skipped"  # 1 where the optimizer did not step (a GradScaler's inf/NaN)
# The update probe:
UPDATE_NORM = "update_norm"
UPDATE_RATIO = "update_ratio"
# The curvature probe (g^T g, g^T H g, the second-order prediction of the step's change):
GTG = "gtg"
GTHG = "gthg"
CURVATURE_ALONG_GRADIENT = "curvature_along_gradient"
GRADIENT_THRESHOLD = "gradient_threshold"
PREDICTED_CHANGE = "predicted_change"
ACTUAL_CHANGE = "actual_change"
# Its two terms: g^T d (the first-order change; positive where the update climbs its batch's
# loss, as momentum and Adam steps may) and d^T H d (the curvature along the update).
UPDATE_SLOPE = "update_slope"
UPDATE_CURVATURE = "update_curvature"
# The sharpness probe:
SHARPNESS = "sharpness"
LAMBDA_MIN = "lambda_min"
SHARPNESS_HVPS = "sharpness_hvps"
STABILITY_THRESHOLD = "stability_threshold"
THRESHOLD_PRECONDITIONED = "threshold_preconditioned"
# Written by the curvature and sharpness probes only where their Hessian-vector products were
# finite differences of gradients ("finite-difference": an operation had no double backward);
# absent, they were exact.
HVP_METHOD = "hvp_method"
# The noise probe (McCandlish et al. 2018):
BATCH_SIZE = "batch_size"
GRAD_NORM_SQ = "grad_norm_sq"
TRACE_COV = "trace_cov"
GRAD_NORM_SQ_UNBIASED = "grad_norm_sq_unbiased"
SNR = "snr"
B_SIMPLE = "b_simple"
NOISE_METHOD = "noise_method"  # how the noise was measured: "backward-hooks", "per-sample",
# "groups" (batch norm in training mode: four groups of the batch), "ranks" (DDP)

# The names the cheap probe can be limited to (Monitor(quantities=...)).
CHEAP = (LOSS, GRAD_NORM, PARAM_NORM, UPDATE_NORM, UPDATE_RATIO, NONFINITE)
NOISE = (GRAD_NORM_SQ_UNBIASED, B_SIMPLE, SNR, TRACE_COV, BATCH_SIZE)

# Analysis records (their "name"):
FINAL_POINT = "final_point"
SPECTRAL_DENSITY = "spectral_density"
INTERPOLATION = "interpolation"
TRAJECTORY = "trajectory"
SURFACE = "surface"
RESTARTS = "restarts"  # the experiment retrained from other seeds, to judge a stalled end
# A few steps from the end on exact gradients against as many on the run's own minibatches
# (also STEPS, SAMPLES, BATCH_SIZE, LOSS: the start's, and ERROR where it could not run):
EXACT_STEPS = "exact_steps"
LOSS_EXACT = "loss_exact"  # the training data's loss after the exact steps
LOSS_MINIBATCH = "loss_minibatch"  # the same after the minibatch steps, one per draw
LOSS_START = "loss_start"  # the same data's loss at the run's first parameters
ARMS_LR = "arms_lr"  # the learning rate both arms stepped at (the first group's)
LAST_LR = "last_lr"  # the run's last learning rate (the first group's)
# The run again from its first parameters on larger batches, same steps (also STEPS, SAMPLES,
# BATCH_SIZE: the run's samples per update, LOSS: its end's, LOSS_START, ERROR):
LARGER_BATCH = "larger_batch"
BATCH_LARGER = "batch_size_larger"  # the rerun's samples per update
LOSS_LARGER = "loss_larger"  # the training data's loss at the rerun's end
SECONDS = "seconds"  # how long the rerun took

# Events (their "name"):
STOPPED = "stopped"

# Fields of the analysis records, by name (a field another record shares is listed once).
# final_point (also LOSS, LAMBDA_MIN):
KIND = "kind"
CURVATURE = "curvature"
GRADIENT_NORM = "gradient_norm"
LAMBDA_MAX = "lambda_max"
INDEX = "index"
REASON = "reason"  # also the "stopped" event's
HVPS = "hvps"  # the Hessian-vector products spent (also the spectral density's)
# spectral_density:
GRID = "grid"
DENSITY = "density"
SIGMA = "sigma"
FRACTION_NEGATIVE = "fraction_negative"  # below -1e-3 of the spectrum's reach, not 0
SHARED = "shared"  # the analysis whose products it reused (their count is in both records)
# interpolation:
ALPHAS = "alphas"
LOSSES = "losses"  # also the surface's, a grid of rows
BARRIER = "barrier"
DISTANCE = "distance"
PATH_LENGTH = "path_length"
# trajectory (also DISTANCE, PATH_LENGTH):
COORDS = "coords"
EXPLAINED = "explained"  # also the surface's
RATIO = "ratio"
ERROR = "error"  # why the trajectory's plane could not be found
SNAPSHOTS = "snapshots"  # the parameter vectors the principal components were taken from
# restarts (also SEEDS, LOSSES, LOSS: the run's own final loss, measured as theirs):
SEEDS = "seeds"
BUDGET = "budget"  # the restarts' budget, in training runs
# surface:
XS = "xs"
YS = "ys"
DIRECTIONS = "directions"  # how the plane was spanned ("pca")
CENTER_LOSS = "center_loss"

# Header fields a run writes besides the reserved ones (any may be missing).
EXPERIMENT = "experiment"  # also findings.json's
DESCRIPTION = "description"
SEED = "seed"
STEPS = "steps"  # the steps planned; STEP is the one a record is at
SAMPLES = "samples"  # the training set's size (the largest batch a remedy may ask for)
SCHEDULER = "scheduler"  # the learning-rate scheduler's class, if any
CLIP_GRAD_NORM = "clip_grad_norm"  # the clipping norm, if any
ACCUMULATE = "accumulate"  # micro-batches per update (gradient accumulation)
OPTIMIZER = "optimizer"
PRESET = "preset"
CONFIG = "config"
DEVICE = "device"
CURVATURE_MODE = "curvature_mode"  # how the tiers ran the model ("eval")
# The environment's versions and machine:
OPTISCOPE_VERSION = "optiscope"
TORCH_VERSION = "torch"
PYTHON_VERSION = "python"
PLATFORM = "platform"
CUDA = "cuda"
VERSIONS = (OPTISCOPE_VERSION, TORCH_VERSION, PYTHON_VERSION)

# A run folder's files.
RECORDS_FILE = "records.jsonl"
FINDINGS_FILE = "findings.json"
REPORT_FILE = "report.html"
RUN_FILES = (RECORDS_FILE, FINDINGS_FILE, REPORT_FILE)
LOCK_FILE = ".optiscope.lock"  # held while a run writes; its holder's pid in LOCK_FILE + ".pid"

# findings.json: {"experiment": ..., "run_id": ..., "last_step": ..., "findings": [FINDING, ...]},
# built from the records of run RUN_ID up to step LAST_STEP; a FINDING is one verdict with these
# fields (Finding.to_dict in optiscope.diagnosis writes them).
LAST_STEP = "last_step"
FINDINGS = "findings"
CHALLENGE = "challenge"
SEVERITY = "severity"
SUMMARY = "summary"
EVIDENCE = "evidence"
REMEDY = "remedy"
MEASURED = "measured"  # false for a fixed statement (a theorem), not read from the run

# The blockwise_spectra analysis (``optiscope analyze --blocks --out DIR``; Zhang et al. 2024):
# the Hessian's diagonal block of each parameter block, written at the analysed point.
BLOCKWISE_SPECTRA = "blockwise_spectra"  # an analysis record's name
BLOCKS = "blocks"  # one entry per block: NAME, PARAMS, SIZE, LARGEST, SMALLEST, HVPS, DENSITY
PARAMS = "params"  # a block's parameter names
SIZE = "size"  # a block's number of parameters
LARGEST = "largest"  # a block's extreme eigenvalues
SMALLEST = "smallest"
DISTANCES = "distances"  # the blocks' pairwise Jensen-Shannon distances (a list of rows)
HETEROGENEITY = "heterogeneity"  # their mean over pairs
SPREAD = "spread"  # the largest block sharpness over the smallest positive one
HETEROGENEOUS = "heterogeneous"  # whether one learning rate cannot suit them all
ADVICE = "advice"  # what the difference supports, in words
# Also GRID (the normalized eigenvalue grid of every block's DENSITY) and HVPS (the total).
