"""A small linear-operator base: subclasses implement one product and get the rest.

In the style of curvlinops' ``_torch_base.py``: an operator knows its shape, dtype and device and
how to multiply a vector; matrices, sums, scalings and compositions follow. Operators count their
products, so an estimator can report what it spent.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class LinearOperator:
    """A square or rectangular linear map ``R^n -> R^m`` given by its product with a vector.

    Subclasses implement :meth:`_matvec` (a 1-D tensor in, a 1-D tensor out) and, unless the
    operator is symmetric, :meth:`_rmatvec`. :attr:`products` counts vector products.
    """

    symmetric: bool = False

    def __init__(self, shape: tuple[int, int], dtype: torch.dtype, device: torch.device) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = dtype
        self.device = torch.device(device)
        self.products = 0

    def _matvec(self, v: Tensor) -> Tensor:
        raise NotImplementedError

    def _rmatvec(self, v: Tensor) -> Tensor:
        if self.symmetric:
            return self._matvec(v)
        raise NotImplementedError(f"{type(self).__name__} does not implement its adjoint")

    def matvec(self, v: Tensor) -> Tensor:
        if v.ndim != 1 or v.shape[0] != self.shape[1]:
            raise ValueError(
                f"expected a vector of length {self.shape[1]}, got a tensor of shape "
                f"{tuple(v.shape)}"
            )
        self.products += 1
        return self._matvec(v)

    def rmatvec(self, v: Tensor) -> Tensor:
        if v.ndim != 1 or v.shape[0] != self.shape[0]:
            raise ValueError(
                f"expected a vector of length {self.shape[0]}, got a tensor of shape "
                f"{tuple(v.shape)}"
            )
        self.products += 1
        return self._rmatvec(v)

    def matmat(self, m: Tensor) -> Tensor:
        # Column by column: batching products through vmap multiplies memory.
        out = torch.empty((self.shape[0], m.shape[1]), dtype=self.dtype, device=self.device)
        for j in range(m.shape[1]):
            out[:, j] = self.matvec(m[:, j])
        return out

    def __matmul__(self, other: Tensor | LinearOperator) -> Tensor | LinearOperator:
        if isinstance(other, LinearOperator):
            return _Composed(self, other)
        if other.ndim == 1:
            return self.matvec(other)
        return self.matmat(other)

    def __add__(self, other: LinearOperator) -> LinearOperator:
        return _Sum(self, other, 1.0)

    def __sub__(self, other: LinearOperator) -> LinearOperator:
        return _Sum(self, other, -1.0)

    def __mul__(self, scalar: float) -> LinearOperator:
        return _Scaled(self, float(scalar))

    __rmul__ = __mul__

    def __neg__(self) -> LinearOperator:
        return _Scaled(self, -1.0)

    @property
    def T(self) -> LinearOperator:
        return self if self.symmetric else _Adjoint(self)

    def to_dense(self) -> Tensor:
        """The matrix, one product per column: for tests on tiny problems."""
        eye = torch.eye(self.shape[1], dtype=self.dtype, device=self.device)
        return self.matmat(eye)

    def to_scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` over float64 numpy arrays."""
        from scipy.sparse.linalg import LinearOperator as ScipyOperator

        def mv(x):
            t = torch.as_tensor(x.reshape(-1), dtype=self.dtype, device=self.device)
            return self.matvec(t).detach().cpu().double().numpy()

        def rmv(x):
            t = torch.as_tensor(x.reshape(-1), dtype=self.dtype, device=self.device)
            return self.rmatvec(t).detach().cpu().double().numpy()

        return ScipyOperator(self.shape, matvec=mv, rmatvec=rmv, dtype="float64")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype}, device={self.device})"
        )


class DenseOperator(LinearOperator):
    """A dense matrix seen as an operator."""

    def __init__(self, matrix: Tensor, symmetric: bool | None = None) -> None:
        if matrix.ndim != 2:
            raise ValueError(f"expected a 2-D matrix, got a tensor of shape {tuple(matrix.shape)}")
        super().__init__((matrix.shape[0], matrix.shape[1]), matrix.dtype, matrix.device)
        self.matrix = matrix
        if symmetric is None:
            symmetric = matrix.shape[0] == matrix.shape[1] and bool(
                torch.allclose(matrix, matrix.T, rtol=1e-6, atol=1e-12)
            )
        self.symmetric = symmetric

    def _matvec(self, v: Tensor) -> Tensor:
        return self.matrix @ v

    def _rmatvec(self, v: Tensor) -> Tensor:
        return self.matrix.T @ v

    def matmat(self, m: Tensor) -> Tensor:
        self.products += m.shape[1]
        return self.matrix @ m

    def to_dense(self) -> Tensor:
        return self.matrix


class CallableOperator(LinearOperator):
    """An operator from a function computing its product with a vector."""

    def __init__(
        self,
        fn: Callable[[Tensor], Tensor],
        size: int,
        dtype: torch.dtype,
        device: torch.device,
        symmetric: bool = True,
    ) -> None:
        super().__init__((size, size), dtype, device)
        self._fn = fn
        self.symmetric = symmetric

    def _matvec(self, v: Tensor) -> Tensor:
        return self._fn(v)


class _Composed(LinearOperator):
    def __init__(self, a: LinearOperator, b: LinearOperator) -> None:
        if a.shape[1] != b.shape[0]:
            raise ValueError(f"cannot compose operators of shapes {a.shape} and {b.shape}")
        super().__init__((a.shape[0], b.shape[1]), a.dtype, a.device)
        self.a, self.b = a, b

    def _matvec(self, v: Tensor) -> Tensor:
        return self.a.matvec(self.b.matvec(v))

    def _rmatvec(self, v: Tensor) -> Tensor:
        return self.b.rmatvec(self.a.rmatvec(v))


class _Sum(LinearOperator):
    def __init__(self, a: LinearOperator, b: LinearOperator, sign: float) -> None:
        if a.shape != b.shape:
            raise ValueError(f"cannot add operators of shapes {a.shape} and {b.shape}")
        super().__init__(a.shape, a.dtype, a.device)
        self.a, self.b, self.sign = a, b, sign
        self.symmetric = a.symmetric and b.symmetric

    def _matvec(self, v: Tensor) -> Tensor:
        return self.a.matvec(v) + self.sign * self.b.matvec(v)

    def _rmatvec(self, v: Tensor) -> Tensor:
        return self.a.rmatvec(v) + self.sign * self.b.rmatvec(v)


class _Scaled(LinearOperator):
    def __init__(self, a: LinearOperator, scalar: float) -> None:
        super().__init__(a.shape, a.dtype, a.device)
        self.a, self.scalar = a, scalar
        self.symmetric = a.symmetric

    def _matvec(self, v: Tensor) -> Tensor:
        return self.scalar * self.a.matvec(v)

    def _rmatvec(self, v: Tensor) -> Tensor:
        return self.scalar * self.a.rmatvec(v)


class _Adjoint(LinearOperator):
    def __init__(self, a: LinearOperator) -> None:
        super().__init__((a.shape[1], a.shape[0]), a.dtype, a.device)
        self.a = a

    def _matvec(self, v: Tensor) -> Tensor:
        return self.a.rmatvec(v)

    def _rmatvec(self, v: Tensor) -> Tensor:
        return self.a.matvec(v)


def as_operator(a: Tensor | LinearOperator) -> LinearOperator:
    """Accept a dense matrix or an operator; estimators call this first."""
    if isinstance(a, LinearOperator):
        return a
    if isinstance(a, Tensor):
        return DenseOperator(a)
    raise TypeError(
        f"expected a square torch.Tensor or an optiscope LinearOperator, got {type(a).__name__}"
    )


def require_square(op: LinearOperator, what: str) -> None:
    """Refuse a non-square operator where ``what`` (an estimator) needs a square one."""
    if op.shape[0] != op.shape[1]:
        raise ValueError(f"{what} needs a square operator, got shape {op.shape}")
