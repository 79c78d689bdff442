"""Dauphin et al. 2014 ("Identifying and attacking the saddle point problem in high-dimensional
non-convex optimization"), fig. 1: at the critical points of a neural network's training loss the
index, the fraction of negative Hessian eigenvalues, grows with the loss; low-loss critical points
are minima, high-loss ones saddles.

Critical points of a small tanh network (teacher-student regression with weight decay, which
makes them nondegenerate) are found by Newton's method on the gradient, globalized by
backtracking on ||g||, from points of many gradient-descent runs. Only points with ||g|| below a
stated threshold count; optiscope's ``Problem`` recomputes each one's gradient and Hessian.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

import optiscope
from optiscope.lab._framework import Lab, experiment

_DT = torch.float64


class _Net:
    """A one-hidden-layer tanh net on one flat vector: per hidden unit j the block
    [w_j (D), b_j, a_j], then the output bias c. Hand-written gradient and Hessian: about ten
    times faster than torch.func on these sizes, and the gradient is batched over starts."""

    def __init__(self, x: Tensor, y: Tensor, hidden: int, wd: float) -> None:
        self.n, self.d = x.shape
        self.y, self.hidden, self.wd = y, hidden, wd
        self.k = self.d + 2
        self.p = hidden * self.k + 1
        self.xt = torch.cat([x, torch.ones(self.n, 1, dtype=_DT)], 1)  # inputs and a 1 for b

    def _split(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        u = t[:, :-1].reshape(t.shape[0], self.hidden, self.k)
        return u[..., : self.d + 1], u[..., -1], t[:, -1]

    def loss_grad(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """Loss and gradient at each row of t (B, P)."""
        wb, a, c = self._split(t)
        h = torch.tanh(wb @ self.xt.T)  # (B, hidden, N)
        r = (a[:, None, :] @ h)[:, 0] + c[:, None] - self.y
        loss = 0.5 * (r * r).mean(1) + 0.5 * self.wd * (t * t).sum(1)
        q = r / self.n
        ga = (h @ q[:, :, None])[..., 0]
        gwb = (q[:, None, :] * a[:, :, None] * (1 - h * h)) @ self.xt
        g = torch.cat([torch.cat([gwb, ga[..., None]], -1).flatten(1), q.sum(1, keepdim=True)], 1)
        return loss, g + self.wd * t

    def hessian(self, t: Tensor) -> Tensor:
        """The Hessian at t (P,): J^T J / N plus the residual-weighted second derivatives of the
        output, which only couple parameters of the same hidden unit."""
        wb, a, c = (v[0] for v in self._split(t[None]))
        h = torch.tanh(self.xt @ wb.T)
        d1 = 1 - h * h
        r = (h @ a + c - self.y) / self.n
        e = self.d + 1
        jac = torch.zeros(self.n, self.hidden, self.k, dtype=_DT)
        jac[:, :, :e] = (a * d1)[:, :, None] * self.xt[:, None, :]
        jac[:, :, -1] = h
        jac = torch.cat([jac.flatten(1), torch.ones(self.n, 1, dtype=_DT)], 1)
        hess = jac.T @ jac / self.n
        blocks = torch.zeros(self.hidden, self.k, self.k, dtype=_DT)
        blocks[:, :e, :e] = torch.einsum("n,nj,nd,nf->jdf", r, -2 * h * d1 * a, self.xt, self.xt)
        v = torch.einsum("n,nj,nd->jd", r, d1, self.xt)
        blocks[:, :e, -1] = v
        blocks[:, -1, :e] = v
        hess[:-1, :-1] += torch.block_diag(*blocks)
        return hess + self.wd * torch.eye(self.p, dtype=_DT)


class _FlatNet(nn.Module):
    """The same network for optiscope's Problem: the output's first column is the prediction,
    the second the weight-decay term, so that the loss function can add it."""

    def __init__(self, theta: Tensor, hidden: int, d: int, wd: float) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta.clone())
        self.hidden, self.d, self.wd = hidden, d, wd

    def forward(self, x: Tensor) -> Tensor:
        u = self.theta[:-1].reshape(self.hidden, self.d + 2)
        out = torch.tanh(x @ u[:, : self.d].T + u[:, self.d]) @ u[:, -1] + self.theta[-1]
        penalty = 0.5 * self.wd * (self.theta * self.theta).sum()
        return torch.stack([out, penalty.expand_as(out)], 1)


def _mse_plus_penalty(out: Tensor, y: Tensor) -> Tensor:
    return 0.5 * ((out[:, 0] - y) ** 2).mean() + out[0, 1]


def _newton(net: _Net, t: Tensor, iters: int, tol: float) -> tuple[Tensor, bool]:
    """Newton on the gradient (d = H^+ g), each step halved until ||g|| drops; gives up when
    the step shrinks below 1e-3 (a stall at a minimum of ||g||^2 that is not critical)."""
    g = net.loss_grad(t[None])[1][0]
    gn = float(g.norm())
    for _ in range(iters):
        if gn < tol:
            return t, True
        d = torch.linalg.lstsq(net.hessian(t), g[:, None]).solution[:, 0]
        alpha = 1.0
        while alpha >= 1e-3:
            new = t - alpha * d
            g_new = net.loss_grad(new[None])[1][0]
            if float(g_new.norm()) < (1 - 1e-4 * alpha) * gn:
                t, g, gn = new, g_new, float(g_new.norm())
                break
            alpha /= 2
        else:
            return t, False
    return t, gn < tol


@experiment(
    "index-vs-loss",
    "Index against loss at critical points (Dauphin et al. 2014)",
    "At the critical points of a neural network's training loss the index (the fraction of "
    "negative Hessian eigenvalues) grows with the loss: the low-loss critical points are minima "
    "or nearly so, the high-loss ones saddles with many descent directions (Dauphin et al. 2014, "
    "fig. 1).",
)
def index_loss(lab: Lab) -> None:
    n, d, teacher_units, hidden, wd = 200, 4, 6, 5, 3e-3
    starts = 48 if lab.small else 144
    steps, lr, every, window = 1500, 1.0, 5, 10
    tol, newton_iters = 1e-10, 30
    min_points, min_rho = 12, 0.6
    gen = torch.Generator().manual_seed(lab.seed)
    x = torch.randn(n, d, generator=gen, dtype=_DT)
    w_teacher = torch.randn(teacher_units, d, generator=gen, dtype=_DT)
    a_teacher = torch.randn(teacher_units, generator=gen, dtype=_DT)
    # A teacher wider than the student: the student cannot fit it, so no critical point is
    # degenerate by way of a zero loss.
    y = torch.tanh(x @ w_teacher.T) @ a_teacher / math.sqrt(teacher_units)
    net = _Net(x, y, hidden, wd)

    # Starts: every pair of init scale and number of active hidden units (the others zero, a
    # point of the embedded smaller network's landscape, Fukumizu and Amari 2000).
    scales = (0.01, 0.1, 0.3, 1.0)
    i = torch.arange(starts)
    scale = torch.tensor(scales, dtype=_DT)[(i // (hidden + 1)) % len(scales)]
    active = i % (hidden + 1)
    mask = (torch.arange(net.p - 1)[None, :] < active[:, None] * net.k).to(_DT)
    mask = torch.cat([mask, torch.ones(starts, 1, dtype=_DT)], 1)
    t = torch.randn(starts, net.p, generator=gen, dtype=_DT) * scale[:, None] * mask

    # Batched gradient descent; candidates are the points where ||g|| is smallest within
    # +-window snapshots (the middles of plateaus, near saddles) and each run's last point.
    # A run that oscillates has many such dips at one loss: one candidate per loss level.
    snaps, norms, values = [], [], []
    for step in range(steps + 1):
        fv, g = net.loss_grad(t)
        if step % every == 0:
            snaps.append(t.clone())
            norms.append(g.norm(dim=1))
            values.append(fv)
        t = t - lr * g
    path, gnorm, fval = torch.stack(snaps), torch.stack(norms), torch.stack(values)
    candidates = []
    for s in range(starts):
        gs, prev = gnorm[:, s], -1.0  # losses are positive
        for k in range(1, len(gs)):
            lo, hi = max(0, k - window), k + window + 1
            if gs[k] == gs[lo:hi].min() and (k == len(gs) - 1 or gs[k] < gs[k + 1]):
                if abs(float(fval[k, s]) - prev) > 1e-3 * abs(prev):
                    candidates.append(path[k, s])
                    prev = float(fval[k, s])

    found = []
    for c in candidates:
        point, ok = _newton(net, c, newton_iters, tol)
        if ok:
            found.append(point)
    # Distinct critical points: loss apart by more than 1e-7 relative, or another index
    # (permutations and sign flips of hidden units give the same loss and index).
    records = []
    for point in found:
        evals = torch.linalg.eigvalsh(net.hessian(point))
        value = float(net.loss_grad(point[None])[0][0])
        records.append((value, int((evals < 0).sum()), point))
    records.sort(key=lambda r: (r[0], r[1]))
    distinct: list[tuple[float, int, Tensor]] = []
    for r in records:
        last = distinct[-1] if distinct else None
        if last is None or r[0] - last[0] > 1e-7 * max(1.0, abs(r[0])) or r[1] != last[1]:
            distinct.append(r)

    # Each distinct point re-measured with optiscope's Problem (autograd), independent of the
    # hand-written derivatives above.
    data = (x, y)
    losses, indices, grad_norms, min_abs_evals, spectra = [], [], [], [], []
    hessian_diff = 0.0
    for value, _, point in distinct:
        problem = optiscope.Problem(_FlatNet(point, hidden, d, wd), _mse_plus_penalty, data)
        hess = problem.dense_hessian()
        evals = torch.linalg.eigvalsh(hess)
        hessian_diff = max(hessian_diff, float((hess - net.hessian(point)).abs().max()))
        losses.append(value)
        indices.append(float((evals < 0).sum()) / net.p)
        grad_norms.append(float(problem.gradient().norm()))
        min_abs_evals.append(float(evals.abs().min()))
        spectra.append(evals.tolist())
    count = len(distinct)
    rho = float(spearmanr(losses, indices)[0]) if count >= 3 and len(set(indices)) > 1 else 0.0
    minima = sum(v == 0 for v in indices)
    saddles = count - minima
    max_grad = max(grad_norms, default=0.0)
    holds = (
        count >= min_points
        and rho >= min_rho
        and minima >= 1
        and saddles >= 1
        and max_grad < tol
        and min(min_abs_evals, default=0.0) > 0
    )

    def draw(fig) -> None:
        ax = fig.add_subplot(1, 2, 1)
        ax.scatter(losses, indices, c="C0", s=18)
        ax.set_xscale("log")
        from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

        # 0.01, 0.02, 0.05, 0.1, ...: matplotlib's minor labels of one decade overlap.
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training loss")
        ax.set_ylabel("index (fraction of negative eigenvalues)")
        ax.set_title(f"{count} critical points, Spearman rho = {rho:.2f}")
        ax = fig.add_subplot(1, 2, 2)
        # The spectra of the lowest, a middle and the highest critical point.
        for j in sorted({0, count // 2, count - 1} if count else set()):
            ax.plot(spectra[j], ".", ms=4, label=f"loss {losses[j]:.3g}")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_xlabel("eigenvalue rank")
        ax.set_ylabel("Hessian eigenvalue")
        ax.legend(fontsize=7)

    lab.figure("index_vs_loss", draw, width=10.0, height=4.2)
    lab.verdict(
        holds,
        f"Newton on the gradient from {starts} gradient-descent runs: at least {min_points} "
        f"distinct critical points (||g|| < {tol:g}, rechecked with optiscope.Problem, no zero "
        f"Hessian eigenvalue), at least one minimum (index 0) and one saddle, and Spearman's rank "
        f"correlation between loss and index at least {min_rho}",
        starts=starts,
        candidates=len(candidates),
        converged=len(found),
        distinct_points=count,
        minima=minima,
        saddles=saddles,
        spearman_rho=rho,
        losses=losses,
        indices=indices,
        gradient_norms=grad_norms,
        min_abs_eigenvalues=min_abs_evals,
        gradient_norm_threshold=tol,
        max_gradient_norm=max_grad,
        hessian_check_max_abs_diff=hessian_diff,
        parameters=net.p,
        hidden_units=hidden,
        teacher_units=teacher_units,
        samples=n,
        weight_decay=wd,
        gd_steps=steps,
        gd_lr=lr,
    )
