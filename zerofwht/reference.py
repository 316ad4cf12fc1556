"""Dense and pure-PyTorch reference implementations.

This is package code, not test code: the tests compare every backend with these functions, the
benchmarks use :func:`fwht_dense` as the naive baseline, and :func:`fwht_butterfly` is the
last-resort ``"torch"`` backend that runs on any device PyTorch supports.

Conventions (DESIGN.md section 2): Sylvester / natural order, ``H[i, j] = (-1)^popcount(i & j)``,
exactly ``scipy.linalg.hadamard(n)``; the transform of ``x`` with shape ``(..., d_in)`` is
``y = scale * (H_n @ pad_n(x))[..., :out_features]``.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

__all__ = [
    "is_power_of_two",
    "next_power_of_two",
    "hadamard_matrix",
    "fwht_dense",
    "fwht_butterfly",
]


def is_power_of_two(n: int) -> bool:
    return isinstance(n, int) and n >= 1 and (n & (n - 1)) == 0


def next_power_of_two(n: int) -> int:
    """Smallest power of two >= n (1 for n <= 1)."""
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def hadamard_matrix(n: int, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
    """The ``n x n`` Sylvester Hadamard matrix, equal to ``scipy.linalg.hadamard(n)``.

    ``H[i, j] = (-1) ** popcount(i & j)``; entries are +-1 (not normalized). ``n`` must be a power
    of two. ``dtype`` defaults to ``torch.get_default_dtype()``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not is_power_of_two(n):
        raise ValueError(f"hadamard_matrix: n must be a power of two >= 1, got n={n!r}")
    dtype = dtype or torch.get_default_dtype()
    h = torch.ones(1, 1, dtype=dtype, device=device)
    while h.shape[0] < n:  # Sylvester doubling: [[H, H], [H, -H]]
        h = torch.cat([torch.cat([h, h], dim=1), torch.cat([h, -h], dim=1)], dim=0)
    return h


def _resolve(x: torch.Tensor, n, dim, norm, out_features, scale):
    """Shared argument handling of the reference functions (same semantics as zerofwht.fwht)."""
    dim = dim % x.ndim if x.ndim else 0
    d_in = x.shape[dim]
    n = next_power_of_two(d_in) if n is None else n
    if not is_power_of_two(n) or n < d_in:
        raise ValueError(f"n must be a power of two >= x.shape[dim]={d_in}, got n={n!r}")
    out_features = n if out_features is None else out_features
    if scale is None:
        scale = {None: 1.0, "backward": 1.0, "ortho": 1.0 / math.sqrt(n), "forward": 1.0 / n}[norm]
    return dim, d_in, n, out_features, float(scale)


def fwht_dense(x: torch.Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None,
               *, out_features: Optional[int] = None, scale: Optional[float] = None) -> torch.Tensor:
    """Dense reference: ``scale * (pad_n(x) @ H_n)[..., :out_features]`` along ``dim``.

    Builds the ``n x n`` matrix, so it is O(n^2) per row: for tests and small baselines only.
    Computes in the input dtype, except that fp16 / bf16 compute in fp32 (like the kernels) and
    are cast back. Pass fp64 input for a reference to compare kernels against.
    """
    dim, d_in, n, out_features, scale = _resolve(x, n, dim, norm, out_features, scale)
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xt = x.movedim(dim, -1).to(compute)
    # Only the first d_in rows of H meet nonzero inputs and only out_features columns are kept,
    # so the product with the top-left block equals the padded-and-truncated transform.
    h = hadamard_matrix(n, dtype=compute, device=x.device)[:d_in, :out_features]
    y = (xt @ h) * scale
    return y.to(x.dtype).movedim(-1, dim)


def fwht_butterfly(x: torch.Tensor, n: int, out_features: int, scale: float) -> torch.Tensor:
    """Vectorized O(n log n) butterfly over the last dimension, in plain PyTorch ops.

    The ``"torch"`` backend: runs on every device and dtype PyTorch supports. Stages are applied in
    increasing distance (1, 2, 4, ...), each as one batched add / subtract over the whole tensor.
    Half types compute in fp32. Makes a padded copy (unlike the compiled kernels).
    """
    d_in = x.shape[-1]
    batch = x.shape[:-1]
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    y = x.reshape(-1, d_in).to(compute)
    if d_in < n:
        y = torch.nn.functional.pad(y, (0, n - d_in))
    else:
        y = y.clone() if y.dtype == x.dtype else y
    rows = y.shape[0]
    h = 1
    while h < n:
        v = y.view(rows, n // (2 * h), 2, h)
        a, b = v[:, :, 0, :], v[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2).view(rows, n)
        h *= 2
    y = y[:, :out_features]
    if scale != 1.0:
        y = y * scale
    return y.to(x.dtype).reshape(*batch, out_features).contiguous()
