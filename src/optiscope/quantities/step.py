"""Quantities measured at a step: each returns plain numbers and decides nothing (layer 3).

Curvature along the step (DESIGN.md, ill-conditioning): with gradient g, Hessian H and update
d = theta_new - theta_old, the second-order model predicts the loss change

    delta_2 = g^T d + 1/2 d^T H d,   for plain SGD d = -lr g:  -lr g^T g + lr^2/2 g^T H g,

and the step raises the loss once lr^2/2 g^T H g > lr g^T g (Goodfellow et al., Deep Learning,
sec. 8.2.1). Sharpness, the top Hessian eigenvalue, is compared with the optimizer's stability
threshold: gradient descent on a quadratic diverges along an eigenvalue above 2/lr.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from optiscope.core.errors import NonFiniteError
from optiscope.core.vectors import accumulate_dot64_, add64_, dot64
from optiscope.linalg.lanczos import lanczos
from optiscope.linalg.operators import CallableOperator, LinearOperator
from optiscope.problem.persample import gradient_moments
from optiscope.problem.problem import Problem, batch_size, take_samples
from optiscope.records import schema


@dataclass(frozen=True)
class StabilityThreshold:
    """The sharpness above which the optimizer's iteration is unstable on a quadratic.

    ``preconditioned`` says the threshold applies to the sharpness of ``P^-1 H`` (Adam's
    diagonal preconditioner), not of ``H``; ``note`` states what is exact and what approximated.
    """

    value: float
    preconditioned: bool
    note: str


def stability_threshold(optimizer: torch.optim.Optimizer, group: int = 0) -> StabilityThreshold:
    """The stability threshold of the optimizer's current hyper-parameters (param group ``group``).

    - SGD: ``2 / lr``; with heavy-ball momentum ``beta``: ``(2 + 2 beta) / lr``, and with
      dampening ``tau`` (the gradient enters the buffer scaled by ``1 - tau``):
      ``(2 + 2 beta) / ((1 - tau) lr)``; with Nesterov momentum: ``(2 + 2 beta) / ((1 + 2 beta)
      lr)``, from the iteration's characteristic polynomial ``z^2 - (1 + beta)(1 - a) z +
      beta (1 - a)`` (``a = lr lambda``), whose root crosses -1 at ``a = (2 + 2 beta) / (1 + 2
      beta)``. All exact for a quadratic.
    - Adam and AdamW: ``(2 + 2 beta1) / ((1 - beta1) lr)`` on the preconditioned Hessian
      ``P^-1 H``, ``P = diag(sqrt(v_hat) + eps)`` (Cohen et al. 2022, "Adaptive gradient methods at
      the edge of stability"): exact for a quadratic with the preconditioner frozen.
    - Others: ``2 / lr``, stated as an approximation.
    """
    hp = optimizer.param_groups[group]
    lr = float(hp["lr"])
    if lr <= 0:
        return StabilityThreshold(float("inf"), False, "learning rate is zero: nothing diverges")
    if isinstance(optimizer, torch.optim.SGD):
        beta = float(hp.get("momentum", 0.0))
        if beta and hp.get("nesterov"):
            return StabilityThreshold(
                (2 + 2 * beta) / ((1 + 2 * beta) * lr),
                False,
                "SGD with Nesterov momentum: (2 + 2 beta) / ((1 + 2 beta) lr), exact",
            )
        if beta:
            damp = float(hp.get("dampening", 0.0))
            if damp:
                return StabilityThreshold(
                    (2 + 2 * beta) / ((1 - damp) * lr),
                    False,
                    "SGD with momentum and dampening: (2 + 2 beta) / ((1 - dampening) lr), exact",
                )
            return StabilityThreshold(
                (2 + 2 * beta) / lr, False, "SGD with momentum: (2 + 2 beta) / lr, exact"
            )
        return StabilityThreshold(2 / lr, False, "SGD: 2 / lr, exact on a quadratic")
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        beta1 = float(hp["betas"][0])
        return StabilityThreshold(
            (2 + 2 * beta1) / ((1 - beta1) * lr),
            True,
            "Adam: (2 + 2 beta1) / ((1 - beta1) lr) on the preconditioned Hessian, exact for a "
            "frozen preconditioner",
        )
    return StabilityThreshold(
        2 / lr, False, f"{type(optimizer).__name__}: 2 / lr, an approximation (plain GD's)"
    )


def adam_preconditioner(
    optimizer: torch.optim.Optimizer, params: list[Tensor], group: int = 0
) -> Tensor | None:
    """Adam's diagonal ``P = sqrt(v_hat) + eps`` as a flat vector over ``params``, or None."""
    hp = optimizer.param_groups[group]
    parts = []
    for p in params:
        state = optimizer.state.get(p, {})
        if "exp_avg_sq" not in state:
            return None
        step = float(state["step"])
        v_hat = state["exp_avg_sq"] / (1 - hp["betas"][1] ** step)
        parts.append((v_hat.sqrt() + hp["eps"]).reshape(-1))
    return torch.cat(parts)


def sharpness(
    problem: Problem,
    *,
    preconditioner: Tensor | None = None,
    tol: float = 1e-3,
    max_steps: int = 30,
    seed: int = 0,
    v0: Tensor | None = None,
    basis: int | None = None,
) -> dict[str, Any]:
    """Top eigenvalue of H, or of ``P^-1 H`` (via the symmetric ``P^-1/2 H P^-1/2``), and its
    eigenvector (of the symmetric form); ``v0`` starts Lanczos (default: random), ``basis``
    bounds its vectors (:func:`~optiscope.linalg.lanczos`)."""
    op: LinearOperator
    if preconditioner is None:
        op = problem.hessian_operator()
    else:
        d = preconditioner.to(problem.dtype).rsqrt()
        op = CallableOperator(
            lambda v: problem.hvp(d * v).mul_(d), problem.num_params, problem.dtype, problem.device
        )
    res = lanczos(
        op,
        1,
        "largest",
        tol=tol,
        max_steps=min(max_steps, problem.num_params),
        seed=seed,
        v0=v0,
        basis=basis,
    )
    return {
        "value": float(res.values[0]),
        "vector": res.vectors[:, 0],
        "error": float(res.errors[0]),
        "converged": bool(res.converged[0]),
        "hvps": res.hvps,
        "preconditioned": preconditioner is not None,
    }


def gradient_curvature(problem: Problem, grad: Tensor) -> tuple[Tensor, dict[str, float]]:
    """``H g`` and the curvature along the gradient: g^T g, g^T H g and their ratio; one
    Hessian-vector product."""
    hg = problem.hvp(grad)
    gtg, gthg = dot64(grad, grad), dot64(grad, hg)
    return hg, {
        schema.GTG: gtg,
        schema.GTHG: gthg,
        schema.CURVATURE_ALONG_GRADIENT: gthg / gtg if gtg > 0 else float("nan"),
    }


def _dthd(problem: Problem, g: Tensor, hg: Tensor, d: Tensor) -> float:
    # With d = a g + e, d^T H d = a^2 g^T H g + 2 a e^T H g + e^T H e, and the last term is
    # negligible when |e| <= 1e-4 |d|.
    gg = dot64(g, g)
    a = dot64(d, g) / gg if gg > 0 else 0.0
    e = d - a * g
    if gg > 0 and float(e.norm()) <= 1e-4 * float(d.norm()):
        return a * a * dot64(g, hg) + 2 * a * dot64(e, hg)
    return dot64(d, problem.hvp(d))


def actual_change(problem: Problem, update: Tensor) -> float:
    """``L(theta + d) - L(theta)`` on the problem's data; inf where the step throws the loss
    to infinity (a cliff, recorded as such)."""
    try:
        return problem.loss(problem.point + update) - problem.loss()
    except NonFiniteError:
        return math.inf


def step_curvature(problem: Problem, grad: Tensor, update: Tensor) -> dict[str, float]:
    """Curvature along the gradient and the update, and the second-order predicted change.

    ``grad`` is g at the problem's point, ``update`` is d; two Hessian-vector products (one
    when d is along g).
    """
    g = grad.to(problem.dtype)
    d = update.to(problem.dtype)
    hg, along = gradient_curvature(problem, g)
    dthd = _dthd(problem, g, hg, d)
    gtd = float(torch.dot(g, d))
    return {
        **along,
        "dthd": dthd,
        schema.PREDICTED_CHANGE: gtd + 0.5 * dthd,
        "first_order_change": gtd,
    }


def group_preconditioner(optimizer: Any, params: list[Tensor]) -> Tensor | None:
    """Parameter groups with different learning rates step ``lr_i g_i``: stable while the top
    eigenvalue of ``P^-1 H`` stays below the first group's threshold, with ``P = lr_0 / lr_i``
    per parameter. None when every parameter has the first group's rate."""
    groups = optimizer.param_groups
    lr0 = float(groups[0]["lr"])
    rate = {id(p): float(g["lr"]) for g in groups for p in g["params"]}
    rates = [rate.get(id(p), lr0) for p in params]
    if lr0 <= 0 or all(r == lr0 for r in rates):
        return None
    # A zero rate gives an infinite P: that parameter does not move, and P^-1/2 is 0 there.
    return torch.cat(
        [
            torch.full((p.numel(),), lr0 / r if r > 0 else math.inf, dtype=torch.float64)
            for p, r in zip(params, rates)
        ]
    ).to(params[0].device)


def gradient_noise(
    problem: Problem, inputs: Any, targets: Any, chunk: int | None = None
) -> dict[str, Any]:
    """Per-sample gradient noise of one minibatch (McCandlish et al. 2018, "An empirical model of
    large-batch training").

    With per-sample gradients g_i of the batch (size B) and their mean g:

    - ``trace_cov`` = sum_i ||g_i - g||^2 / (B - 1), the trace of the per-sample covariance Sigma;
    - ``grad_norm_sq_unbiased`` = ||g||^2 - tr(Sigma) / B, an unbiased estimate of |G|^2;
    - ``snr`` = ||g||^2 / (tr(Sigma) / B), the batch gradient's signal-to-noise ratio;
    - ``b_simple`` = tr(Sigma) / |G|^2, the critical batch size (inf when |G|^2 is not resolved).

    For models built of Linear and convolution layers, the moments come from one backward pass
    without per-sample gradients (:func:`optiscope.problem.persample.gradient_moments`). Otherwise
    per-sample gradients come in chunks of ``chunk`` samples (vmap, or a loop where the model
    cannot be vmapped), so memory stays at ``chunk`` gradients: by default as many as fit in
    2^24 numbers (64 MiB in float32), 1 to 64.
    """

    n = batch_size(inputs, targets)
    if n < 2:
        raise ValueError(f"gradient noise needs at least 2 samples in the batch, got {n}")
    moments = gradient_moments(problem, inputs, targets)
    if moments is not None:
        total, sq = moments.total.double(), float(moments.sq_norms.sum())
    else:
        total = torch.zeros(problem.num_params, dtype=torch.float64, device=problem.device)
        sq_sum = torch.zeros((), dtype=torch.float64, device=problem.device)
        if chunk is None:
            chunk = max(1, min(64, 2**24 // max(problem.num_params, 1)))
        for start in range(0, n, chunk):
            sl = slice(start, min(start + chunk, n))
            x = take_samples(inputs, sl, n)
            y = targets[sl] if targets is not None else None  # a model's own loss: no targets
            rows = problem.per_sample_gradients(x, y)
            # Row by row: a float64 sum or a square of the whole chunk would each hold another
            # chunk's worth (at scale, a chunk is one or two parameter vectors).
            for i in range(rows.shape[0]):
                add64_(total, rows[i])
                accumulate_dot64_(sq_sum, rows[i], rows[i])
            del rows
        sq = float(sq_sum)
    q = noise_from_moments(n, sq, float(torch.dot(total, total)) / n**2)
    return {"method": "moments" if moments is not None else "per-sample", **q}


def noise_from_moments(n: int, sum_sq: float, mean_sq: float) -> dict[str, Any]:
    """The noise quantities of :func:`gradient_noise` from ``sum_i ||g_i||^2`` and ``||g||^2``
    of the mean per-sample gradient g."""
    return _noise(n, mean_sq, max((sum_sq - n * mean_sq) / (n - 1), 0.0))


def noise_from_ranks(
    local: int, ranks: int, mean_local_sq: float, global_sq: float
) -> dict[str, Any]:
    """The noise quantities from ``ranks`` local gradients of ``local`` samples each (the mean of
    their squared norms) and their average (its squared norm): McCandlish et al. (2018, app. A),
    E|g_B|^2 = |G|^2 + tr(Sigma)/B at the two batch sizes B = local and B = ranks * local."""
    n = local * ranks
    return _noise(n, global_sq, max((mean_local_sq - global_sq) / (1 / local - 1 / n), 0.0))


def noise_from_consecutive(sq_a: float, sq_b: float, cross: float) -> dict[str, Any]:
    """The noise quantities of batches of one sample from two consecutive steps' gradients
    g_a, g_b (their squared norms and dot product): independent draws at nearly one point, so
    E[g_a . g_b] ~ |G|^2 and E|g|^2 = |G|^2 + tr(Sigma)."""
    mean_sq = (sq_a + sq_b) / 2
    return _noise(1, mean_sq, max(mean_sq - cross, 0.0))


def _noise(n: int, mean_sq: float, trace_cov: float) -> dict[str, Any]:
    """|G|^2 = |g|^2 - tr(Sigma)/n unbiased, the SNR and B_simple = tr(Sigma) / |G|^2 from the
    squared norm of a batch of n's gradient and the trace of the per-sample covariance."""
    g2 = mean_sq - trace_cov / n
    return {
        schema.BATCH_SIZE: n,
        schema.GRAD_NORM_SQ: mean_sq,
        schema.TRACE_COV: trace_cov,
        schema.GRAD_NORM_SQ_UNBIASED: g2,
        schema.SNR: mean_sq / (trace_cov / n) if trace_cov > 0 else float("inf"),
        schema.B_SIMPLE: trace_cov / g2 if g2 > 0 else float("inf"),
    }
