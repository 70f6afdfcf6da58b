"""NNGP and NTK kernels of fully connected networks (torch, float64).

The network: `depth` hidden layers h_l = w_std / sqrt(n_{l-1}) W_l phi(h_{l-1}) + b_std b_l with
standard-normal W_l, b_l (the NTK parameterisation), then a dense readout of the same form. At
infinite width every layer's pre-activations are a Gaussian process with covariance K_l:

    K_0(x, x') = w_std^2 <x, x'> / d + b_std^2
    K_l        = w_std^2 E[phi(u) phi(v)] + b_std^2,      (u, v) ~ N(0, K_{l-1} on {x, x'})
    Theta_0    = K_0,  Theta_l = K_l + w_std^2 E[phi'(u) phi'(v)] Theta_{l-1}

and the network's output has the NNGP K_depth and the NTK Theta_depth. The two Gaussian
expectations are closed forms for every activation here:

- relu: the arc-cosine kernel of degree 1 (Cho and Saul 2009), with theta the angle of (u, v):
  E[phi phi] = sqrt(ab) (sin theta + (pi - theta) cos theta) / (2 pi), E[phi' phi'] = (pi - theta) / (2 pi).
- erf: E[erf(u) erf(v)] = (2/pi) arcsin(2c / sqrt((1 + 2a)(1 + 2b))) (Williams 1997); its derivative
  in c (Price's theorem: E[phi' phi'] = d/dc E[phi phi]) is 4 / (pi sqrt((1 + 2a)(1 + 2b) - 4c^2)).
- gelu, phi(x) = x Phi(x): with A = (a + 1)(b + 1), Delta = sqrt(A - c^2) and beta = arctan(c / Delta),
  E[phi phi] = c / 4 + (c beta + (c^2 + ab Delta^2) / (A Delta)) / (2 pi) (Tsuchida et al. 2020), and by
  Price's theorem E[phi' phi'] = 1/4 + beta / (2 pi) + c (1 + (1 - ab) / A + 1 / Delta^2) / (2 pi Delta).

(a = K(x, x), b = K(x', x'), c = K(x, x').) The tests check each against two-dimensional
Gauss-Hermite quadrature and the kernels against Monte-Carlo over finite-width networks.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from privaudit.attacks.models import FC_ACTIVATIONS
from privaudit.core.errors import InputError

KINDS = ("nngp", "ntk")
# Row blocks of about this many kernel entries keep the elementwise temporaries small.
BLOCK_ENTRIES = 1 << 18
# cos(theta) is kept inside [-1 + eps, 1 - eps] so arccos has a finite gradient for the queries.
_COS_MARGIN = 1e-12


@dataclass(frozen=True)
class KernelSpec:
    """The infinite-width FC network a kernel describes (see the module docstring)."""

    depth: int = 2
    w_std: float = math.sqrt(2.0)
    b_std: float = 0.0
    activation: str = "relu"
    kind: str = "nngp"

    def __post_init__(self):
        if not isinstance(self.depth, int) or self.depth < 1:
            raise InputError(f"kernel depth must be an integer >= 1, got {self.depth!r}")
        if not (math.isfinite(self.w_std) and self.w_std > 0):
            raise InputError(f"kernel w_std must be a positive number, got {self.w_std!r}")
        if not (math.isfinite(self.b_std) and self.b_std >= 0):
            raise InputError(f"kernel b_std must be a number >= 0, got {self.b_std!r}")
        if self.activation not in FC_ACTIVATIONS:
            raise InputError(
                f"kernel activation must be one of {', '.join(FC_ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.kind not in KINDS:
            raise InputError(f"kernel kind must be 'nngp' or 'ntk', got {self.kind!r}")


def _relu(a, b, c, need_dot: bool):
    norms = torch.sqrt(a) * torch.sqrt(b)  # square roots of the [n, 1] and [1, m] diagonals
    cos = (c / norms.clamp_min(1e-300)).clamp(-1 + _COS_MARGIN, 1 - _COS_MARGIN)
    theta = torch.arccos(cos)
    value = norms * (torch.sin(theta) + (math.pi - theta) * cos) / (2 * math.pi)
    return value, ((math.pi - theta) / (2 * math.pi) if need_dot else None)


def _erf(a, b, c, need_dot: bool):
    product = (1 + 2 * a) * (1 + 2 * b)
    value = (2 / math.pi) * torch.arcsin((2 * c / torch.sqrt(product)).clamp(-1, 1))
    dot = 4 / (math.pi * torch.sqrt(product - 4 * c**2)) if need_dot else None
    return value, dot


def _gelu(a, b, c, need_dot: bool):
    big = (a + 1) * (b + 1)
    delta_sq = big - c**2  # > 0 since c^2 <= ab
    delta = torch.sqrt(delta_sq)
    beta = torch.arctan(c / delta)
    value = c / 4 + (c * beta + (c**2 + a * b * delta_sq) / (big * delta)) / (2 * math.pi)
    if not need_dot:
        return value, None
    dot = (
        0.25
        + beta / (2 * math.pi)
        + c * (1 + (1 - a * b) / big + 1 / delta_sq) / (2 * math.pi * delta)
    )
    return value, dot


_DUALS = {"relu": _relu, "erf": _erf, "gelu": _gelu}


def layer_diagonals(x: torch.Tensor, spec: KernelSpec) -> list[torch.Tensor]:
    """K_l(x, x) for every layer l = 0..depth-1 (the inputs of each activation)."""
    diag = spec.w_std**2 * (x * x).sum(dim=1) / x.shape[1] + spec.b_std**2
    layers = [diag]
    for _ in range(spec.depth - 1):
        if spec.activation == "relu":
            mapped = diag / 2
        else:
            mapped, _ = _DUALS[spec.activation](diag, diag, diag, False)
        diag = spec.w_std**2 * mapped + spec.b_std**2
        layers.append(diag)
    return layers


def kernel_torch(
    x1: torch.Tensor, x2: torch.Tensor, spec: KernelSpec, diag1=None, diag2=None
) -> torch.Tensor:
    """The kernel [n1, n2] of flattened float64 inputs, differentiable in both; diag1/diag2 are
    `layer_diagonals` of x1/x2 when the caller has them already."""
    diag1 = layer_diagonals(x1, spec) if diag1 is None else diag1
    diag2 = layer_diagonals(x2, spec) if diag2 is None else diag2
    need_dot = spec.kind == "ntk"
    dual = _DUALS[spec.activation]
    nngp = spec.w_std**2 * (x1 @ x2.T) / x1.shape[1] + spec.b_std**2
    ntk = nngp
    for layer in range(spec.depth):
        value, dot = dual(diag1[layer][:, None], diag2[layer][None, :], nngp, need_dot)
        nngp = spec.w_std**2 * value + spec.b_std**2
        if need_dot:
            ntk = nngp + spec.w_std**2 * dot * ntk
    return ntk if need_dot else nngp


def as_rows(x) -> torch.Tensor:
    """Inputs [n, ...] as float64 rows [n, d]; NaN or infinite values are an InputError."""
    rows = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    rows = rows.detach().to(torch.float64).reshape(len(rows), -1)
    if rows.shape[1] == 0 or not torch.isfinite(rows).all():
        raise InputError("kernel inputs must be non-empty and finite (no NaN or infinite values)")
    return rows


def kernel_matrix(x1: torch.Tensor, x2: torch.Tensor, spec: KernelSpec) -> torch.Tensor:
    """The kernel [n1, n2] of float64 rows, computed in row blocks without autograd; when x2 is
    x1, only the blocks on and above the diagonal, mirrored."""
    symmetric = x2 is x1
    diag1, diag2 = layer_diagonals(x1, spec), layer_diagonals(x2, spec)
    out = torch.empty(len(x1), len(x2), dtype=torch.float64)
    step = max(1, BLOCK_ENTRIES // max(1, len(x2)))

    def fill(start: int) -> None:
        rows = slice(start, start + step)
        columns = slice(start if symmetric else 0, len(x2))
        with torch.no_grad():  # grad mode is per thread
            block = kernel_torch(
                x1[rows], x2[columns], spec, [d[rows] for d in diag1], [d[columns] for d in diag2]
            )
            out[rows, columns] = block
            if symmetric:
                out[columns, rows] = block.T

    # One torch thread per block and blocks side by side: intra-op threads meet at a barrier after
    # every small elementwise op, and on a busy machine each barrier waits for a descheduled thread
    # (20x slower on two contended cores).
    workers = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fill, range(0, len(x1), step)))
    finally:
        torch.set_num_threads(workers)
    return out


def fc_kernel(
    x1, x2, *, depth: int, w_std: float, b_std: float, activation: str = "relu", kind: str = "nngp"
) -> np.ndarray:
    """The NNGP (kind="nngp") or NTK (kind="ntk") of a fully connected network with `depth`
    hidden layers, between the rows of x1 [n1, ...] and x2 [n2, ...] (each flattened), as a
    float64 numpy array [n1, n2]. Weights N(0, w_std^2 / fan_in), biases N(0, b_std^2), NTK
    parameterisation; activation relu, gelu or erf."""
    spec = KernelSpec(
        depth=depth, w_std=float(w_std), b_std=float(b_std), activation=activation, kind=kind
    )
    a, b = as_rows(x1), as_rows(x2)
    if a.shape[1] != b.shape[1]:
        raise InputError(
            f"kernel inputs have {a.shape[1]} and {b.shape[1]} features; they must match"
        )
    return kernel_matrix(a, b, spec).numpy()
