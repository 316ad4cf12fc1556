"""Dense and pure-PyTorch reference implementations.

This is package code, not test code: the tests compare every backend with these functions, the
benchmarks use :func:`fwht_dense` as the naive baseline, and :func:`fwht_butterfly` is the
last-resort ``"torch"`` backend that runs on any device PyTorch supports.

Conventions (docs/design.md, mathematics): Sylvester / natural order, ``H[i, j] = (-1)^popcount(i & j)``,
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


def hadamard_matrix(n: int, dtype: Optional[torch.dtype] = None, device=None, *,
                    base: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The ``n x n`` Hadamard matrix of the transform of length ``n``.

    Power of two (and no ``base``): Sylvester's, equal to ``scipy.linalg.hadamard(n)``,
    ``H[i, j] = (-1) ** popcount(i & j)``. ``n = K * 2^k`` (a supported size, see
    ``zerofwht.bases``): ``torch.kron(H_K, H_{2^k})`` with the built-in ``H_K``, or with
    ``base`` (a K x K Hadamard matrix) when given. Entries are +-1 (not normalized). ``dtype``
    defaults to ``torch.get_default_dtype()``.
    """
    if base is not None or (isinstance(n, int) and not isinstance(n, bool) and n >= 1
                            and not is_power_of_two(n)):
        from . import bases
        return bases.hadamard_matrix(n, base=base, dtype=dtype or torch.get_default_dtype(),
                                     device=device)
    if isinstance(n, bool) or not isinstance(n, int) or not is_power_of_two(n):
        raise ValueError(f"hadamard_matrix: n must be a power of two >= 1, got n={n!r}")
    dtype = dtype or torch.get_default_dtype()
    h = torch.ones(1, 1, dtype=dtype, device=device)
    while h.shape[0] < n:  # Sylvester doubling: [[H, H], [H, -H]]
        h = torch.cat([torch.cat([h, h], dim=1), torch.cat([h, -h], dim=1)], dim=0)
    return h


def _resolve(x: torch.Tensor, n, dim, norm, out_features, scale, base=None):
    """Shared argument handling of the reference functions (same semantics as zerofwht.fwht)."""
    dim = dim % x.ndim if x.ndim else 0
    d_in = x.shape[dim]
    if base is not None:
        k = base.shape[0]
        n = k * next_power_of_two(max(1, -(-d_in // k))) if n is None else n
    else:
        n = next_power_of_two(d_in) if n is None else n
    from . import bases
    if base is None and not bases.is_supported(n) or n < d_in:
        raise ValueError(f"n must be a power of two >= x.shape[dim]={d_in}, got n={n!r}")
    out_features = n if out_features is None else out_features
    if scale is None:
        scale = {None: 1.0, "backward": 1.0, "ortho": 1.0 / math.sqrt(n), "forward": 1.0 / n}[norm]
    return dim, d_in, n, out_features, float(scale)


def fwht_dense(x: torch.Tensor, n: Optional[int] = None, dim: int = -1, norm: Optional[str] = None,
               *, out_features: Optional[int] = None, scale: Optional[float] = None,
               base: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Dense reference: ``scale * (H_n @ pad_n(x))[..., :out_features]`` along ``dim``
    (``H_n`` from :func:`hadamard_matrix`, so ``n = K * 2^k`` and ``base=`` work too).

    Builds the ``n x n`` matrix, so it is O(n^2) per row: for tests and small baselines only.
    Computes in the input dtype, except that fp16 / bf16 compute in fp32 (like the kernels) and
    are cast back. Pass fp64 input for a reference to compare kernels against.
    """
    dim, d_in, n, out_features, scale = _resolve(x, n, dim, norm, out_features, scale, base)
    compute = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    xt = x.movedim(dim, -1).to(compute)
    # Only the first d_in rows of H meet nonzero inputs and only out_features columns are kept,
    # so the product with the top-left block equals the padded-and-truncated transform.
    # y = H pad(x) is pad(x) @ H^T (H_K kron H_p is not symmetric for most bases)
    h = hadamard_matrix(n, dtype=compute, device=x.device, base=base).T[:d_in, :out_features]
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
    rows = math.prod(batch)
    y = x.reshape(rows, d_in).to(compute)  # rows, not -1: d_in may be 0
    if d_in < n:
        y = torch.nn.functional.pad(y, (0, n - d_in))
    else:
        y = y.clone() if y.dtype == x.dtype else y
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


# =================================================================================================
# Dense references of the initializers (zerofwht.init; docs/design.md, initialization rules). Each builds the FULL
# weight on the host (or `device`), O(out * in) memory: for tests and the benchmark's baseline
# only. fp64 by default; pass `dtype` to get exactly what an initializer writes in that dtype (the
# values are computed in fp64, then converted once, like the kernels' value conversion).
# =================================================================================================
__all__ += [
    "hadamard_scale",
    "partial_identity_matrix",
    "hadamard_block",
    "zero_init_matrix",
    "idi_matrix",
    "idiz_matrix",
    "centre_tap",
    "patch_maintain",
    "init_reference",
]


def hadamard_scale(out_features: int, in_features: int, scale=None) -> float:
    """The constant ``c`` of ``hadamard_``: ``P = 2^m = next_power_of_two(max(out, in))``;
    ``None`` / ``"code"``: ``2^(-m/2)`` (the ZerO authors' code), ``"paper"``: ``2^(-(m-1)/2)``
    (the paper's pseudo-code), a number: itself. Computed as ``ldexp(sqrt(1/2) or 1, ...)``: the
    correctly rounded power of two."""
    m = next_power_of_two(max(out_features, in_features)).bit_length() - 1
    if scale is None or scale == "code":
        e = m
    elif scale == "paper":
        e = m - 1
    else:
        return float(scale)
    return math.ldexp(math.sqrt(0.5), -((e - 1) // 2)) if e % 2 else math.ldexp(1.0, -(e // 2))


def _finish(w64: torch.Tensor, dtype) -> torch.Tensor:
    return w64 if dtype in (None, torch.float64) else w64.to(dtype)


def partial_identity_matrix(out_features: int, in_features: int, value: float = 1.0, *,
                            dtype=None, device=None) -> torch.Tensor:
    """``I*`` of shape ``(out, in)``: ``w[i, i] = value`` for ``i < min(out, in)``, else 0."""
    w = torch.zeros(out_features, in_features, dtype=torch.float64, device=device)
    k = min(out_features, in_features)
    w[torch.arange(k), torch.arange(k)] = value
    return _finish(w, dtype)


def hadamard_block(out_features: int, in_features: int, scale=None, *, dtype=None,
                   device=None) -> torch.Tensor:
    """``c * H_P[:out, :in]`` with ``P = next_power_of_two(max(out, in))`` and ``c`` from
    :func:`hadamard_scale` (default ``P^-1/2``)."""
    c = hadamard_scale(out_features, in_features, scale)
    return _finish(_hadamard_top_left(out_features, in_features, device) * c, dtype)


def _hadamard_top_left(rows: int, cols: int, device=None) -> torch.Tensor:
    """``H_P[:rows, :cols]`` in fp64: sliced from the Sylvester matrix when ``P`` is small, else
    from the parity of ``i & j`` (so a thin block of a huge ``H_P`` costs O(rows * cols))."""
    p = next_power_of_two(max(rows, cols))
    if p <= 2048:
        return hadamard_matrix(p, dtype=torch.float64, device=device)[:rows, :cols]
    both = torch.arange(rows, device=device)[:, None] & torch.arange(cols, device=device)[None, :]
    parity = torch.zeros_like(both)
    while bool(both.any()):
        parity ^= both & 1
        both = both >> 1
    return 1.0 - 2.0 * parity.to(torch.float64)


def zero_init_matrix(out_features: int, in_features: int, *, dtype=None, device=None) -> torch.Tensor:
    """ZerO Algorithm 1: ``out <= in``: ``I*``; ``out > in``: ``2^(-q/2) H_{2^q}[:out, :in]``,
    ``q = ceil(log2(out))``."""
    if out_features <= in_features:
        return partial_identity_matrix(out_features, in_features, dtype=dtype, device=device)
    q = (out_features - 1).bit_length()
    h = _hadamard_top_left(out_features, in_features, device)
    return _finish(h * 2.0 ** (-q / 2), dtype)


def idi_matrix(out_features: int, in_features: int, tau: float = 1.0, *, dtype=None,
               device=None) -> torch.Tensor:
    """IDI_tau: ``w[m, j] = tau`` iff ``m = j (mod in)`` (identities stacked down the rows when
    ``out > in``; ``[tau I | 0]`` when ``out <= in``)."""
    w = torch.zeros(out_features, in_features, dtype=torch.float64, device=device)
    for m in range(out_features):
        w[m, m % in_features] = tau
    return _finish(w, dtype)


def idiz_matrix(out_features: int, in_features: int, eps: float = 1e-6, *, dtype=None,
                device=None) -> torch.Tensor:
    """IDIZ_eps: IDI_eps, then ``out < in``: columns ``out..in-1`` get IDI_-eps
    (``w[m, out + j] = -eps`` iff ``m = j (mod in - out)``); ``out >= in``:
    ``w[m, (m + 1) mod in] = -eps``."""
    w = idi_matrix(out_features, in_features, eps, device=device)
    for m in range(out_features):
        if out_features < in_features:
            w[m, out_features + m % (in_features - out_features)] = -eps
        else:
            w[m, (m + 1) % in_features] = -eps
    return _finish(w, dtype)


def centre_tap(matrix: torch.Tensor, kernel_size) -> torch.Tensor:
    """Conv form ``(out, in, *kernel_size)``: every tap 0 except ``(k0//2, k1//2, ...)``, which holds
    the ``(out, in)`` matrix."""
    w = matrix.new_zeros(*matrix.shape, *kernel_size)
    w[(slice(None), slice(None)) + tuple(k // 2 for k in kernel_size)] = matrix
    return w


def patch_maintain(builder, shape, **kwargs) -> torch.Tensor:
    """IDInit's conv view: ``builder(out, in * prod(kernel))`` reshaped to ``shape``."""
    out = shape[0]
    return builder(out, math.prod(shape[1:]), **kwargs).reshape(shape)


_MATRIX_BUILDERS = {
    "partial_identity": partial_identity_matrix,
    "hadamard": hadamard_block,
    "zero": zero_init_matrix,
    "idi": idi_matrix,
    "idiz": idiz_matrix,
}


def init_reference(name: str, shape, *, dtype=None, device=None, **params) -> torch.Tensor:
    """Dense full weight that ``zerofwht.init.<name>_`` writes into a tensor of ``shape``.

    ``name``: ``partial_identity``, ``hadamard``, ``zero``, ``idi``, ``idiz`` (conv weights: the
    matrix at the centre tap) or ``idic``, ``idizc`` (conv weights: IDI / IDIZ of
    ``w.reshape(out, -1)``). ``params``: ``scale`` / ``tau`` / ``eps`` as for the initializer.
    """
    shape = tuple(int(s) for s in shape)
    if name in ("idic", "idizc"):
        w = patch_maintain(_MATRIX_BUILDERS[name[:-1]], shape, **params)
    else:
        w = _MATRIX_BUILDERS[name](shape[0], shape[1], **params)
        if len(shape) > 2:
            w = centre_tap(w, shape[2:])
    return _finish(w.to(device) if device is not None else w, dtype)
