r"""The initializers of zerofwht.init: each turns its arguments into a rule code and a value and
hands them to the fill op layer (fill.py), which writes the tensor (or each local shard) once."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .. import reference
from .fill import (KIND_HADAMARD, KIND_IDI, KIND_IDIZ, KIND_PARTIAL_IDENTITY, KIND_ZEROS, TAP_CENTRE,
                   TAP_FLATTEN, _apply, _real, logical_matrix)

__all__ = ["partial_identity_", "hadamard_", "zero_init_", "idi_", "idiz_", "idic_", "idizc_"]


def partial_identity_(w: torch.Tensor, *, offset: Optional[Sequence[int]] = None,
                      full_shape: Optional[Sequence[int]] = None,
                      backend: Optional[str] = None) -> torch.Tensor:
    r"""Partial identity ``I*``: ``w[i, i] = 1`` for ``i < min(out, in)``, every other entry 0.

    Args:
        w: ``(out, in)`` or conv ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        offset: global index of ``w[0, 0, ...]`` in the full weight (one int per dim; default 0s).
        full_shape: shape of the full logical weight ``w`` is a block of (default ``w.shape``).
        backend: ``"cpp"``, ``"cuda"``, ``"triton"``, ``"torch"`` or None (auto).

    Returns:
        ``w``, filled in place.

    Equivalent dense formula (conv: this matrix at the centre tap, other taps 0)::

        w = torch.eye(out, in)          # zerofwht.reference.partial_identity_matrix(out, in)
    """
    return _apply("partial_identity_", w, lambda f: (KIND_PARTIAL_IDENTITY, 1.0), TAP_CENTRE,
                  offset, full_shape, backend)


def _hadamard_value(fname, scale):
    if isinstance(scale, str):
        if scale not in ("code", "paper"):
            raise ValueError(f'{fname}: scale must be None, "code", "paper" or a number, got '
                             f"scale={scale!r}")
    elif scale is not None:
        _real(scale, "scale")
    return lambda f: (KIND_HADAMARD, reference.hadamard_scale(f[0], f[1], scale))


def _kron_size(fname: str, n, out: int, inp: int):
    """(K, p) of a transform size n = K * p (zerofwht.bases' rule), n >= max(out, in)."""
    from .. import bases
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{fname}: n must be an int, got {type(n).__name__} {n!r}")
    s = bases.split(n)
    if s is None:
        raise ValueError(f"{fname}: {bases.unsupported_message(n)}")
    if n < max(out, inp):
        raise ValueError(f"{fname}: n={n} is smaller than max(out, in) = {max(out, inp)}")
    return s


def _kron_block(n: int, c: float):
    """``after`` hook of the fill: writes ``c * H_n[i, j]`` (H_n = H_K kron H_p, p = 2^k, so
    ``H_n[i, j] = H_K[i >> k, j >> k] * (-1)^popcount(i & j & (p - 1))``) into the (local shard
    of the) out x in block, at the centre tap of conv weights. Computed with torch ops on w's
    device, after the fused fill wrote zeros: the fused fill kernel has no K x K rule yet."""
    from .. import bases
    k_order, p = bases.split(n)

    def after(local: torch.Tensor, offset, full_shape):
        if local.numel() == 0:
            return
        dev = local.device
        idx = [slice(None), slice(None)]
        for d in range(2, local.dim()):  # conv: only the centre tap holds the matrix
            t = full_shape[d] // 2 - offset[d]
            if not 0 <= t < local.shape[d]:
                return
            idx.append(t)
        i = torch.arange(offset[0], offset[0] + local.shape[0], device=dev)[:, None]
        j = torch.arange(offset[1], offset[1] + local.shape[1], device=dev)[None, :]
        hk = bases.hadamard_base(k_order, torch.float64, dev)
        log_p = p.bit_length() - 1
        both = i & j & (p - 1)
        parity = torch.zeros_like(both)
        for _ in range(log_p):
            parity ^= both & 1
            both = both >> 1
        val = hk[i >> log_p, j >> log_p] * (1.0 - 2.0 * parity.to(torch.float64)) * c
        local[tuple(idx)] = val.to(local.dtype)
    return after


def _kron_scale(fname: str, scale, n: int) -> float:
    # default (None / "code"): n^-1/2, orthogonal for a square n x n block; "paper": sqrt(2) larger
    if scale is None or scale == "code":
        return n ** -0.5
    if scale == "paper":
        return (n / 2) ** -0.5
    if isinstance(scale, str):
        raise ValueError(f'{fname}: scale must be None, "code", "paper" or a number, got scale={scale!r}')
    return _real(scale, "scale")


def hadamard_(w: torch.Tensor, scale=None, *, offset: Optional[Sequence[int]] = None,
              full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None,
              n: Optional[int] = None) -> torch.Tensor:
    r"""Hadamard block: ``w[i, j] = c * (-1)^popcount(i & j)``, the top-left ``out x in`` block of
    the Sylvester ``H_P`` (``scipy.linalg.hadamard(P)``), ``P = 2^m = 2^ceil(log2(max(out, in)))``.

    Args:
        w: ``(out, in)`` or conv ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        scale: ``c``. None or ``"code"``: ``P^-1/2`` (the ZerO authors' code, default);
            ``"paper"``: ``2^-(m-1)/2`` (the ZerO paper's pseudo-code, sqrt(2) larger); or any
            real number.
        offset, full_shape, backend: as in :func:`partial_identity_`.
        n: the transform size whose matrix ``H_n`` the block is cut from, ``n >= max(out, in)``: a
            power of two or ``K * 2^k`` (``zerofwht.bases``; ``H_n = H_K kron H_{2^k}``, so
            ``w[i, j] = c * H_K[i >> k, j >> k] * (-1)^popcount(i & j & (2^k - 1))``). Default
            None: ``P`` as above. With ``n``, ``c`` defaults to ``n^-1/2`` (``"paper"``:
            ``(n/2)^-1/2``). The K * 2^k block is written by torch ops on w's device after the
            fused fill (the fill kernel has no K x K rule yet).

    Returns:
        ``w``, filled in place.

    Equivalent dense formula (conv: this matrix at the centre tap, other taps 0)::

        w = c * torch.tensor(scipy.linalg.hadamard(P))[:out, :in]
        w = c * zerofwht.reference.hadamard_matrix(n)[:out, :in]      # with n=
    """
    if n is not None:
        return _hadamard_n("hadamard_", w, scale, n, offset, full_shape, backend, always=True)
    return _apply("hadamard_", w, _hadamard_value("hadamard_", scale), TAP_CENTRE, offset,
                  full_shape, backend)


def _hadamard_n(fname, w, scale, n, offset, full_shape, backend, always: bool):
    """hadamard_ / zero_init_ with a transform size n (``always``: hadamard_; else ZerO's rule:
    partial identity when out <= in)."""
    if not isinstance(w, torch.Tensor) or w.dim() < 2:
        return _apply(fname, w, lambda f: (KIND_ZEROS, 0.0), TAP_CENTRE, offset, full_shape, backend)
    shape = tuple(full_shape) if full_shape is not None else tuple(w.shape)
    out, inp = int(shape[0]), int(shape[1])
    if not always and out <= inp:
        return _apply(fname, w, lambda f: (KIND_PARTIAL_IDENTITY, 1.0), TAP_CENTRE, offset,
                      full_shape, backend)
    _kron_size(fname, n, out, inp)
    c = _kron_scale(fname, scale, n)
    return _apply(fname, w, lambda f: (KIND_ZEROS, 0.0), TAP_CENTRE, offset, full_shape, backend,
                  after=_kron_block(n, c))


def _zero_rule(f):
    out, inp = f[0], f[1]
    if out <= inp:
        return KIND_PARTIAL_IDENTITY, 1.0
    return KIND_HADAMARD, reference.hadamard_scale(out, inp)  # q = ceil(log2(out)): c = 2^(-q/2)


def zero_init_(w: torch.Tensor, *, offset: Optional[Sequence[int]] = None,
               full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None,
               n: Optional[int] = None) -> torch.Tensor:
    r"""ZerO initialization (Zhao et al. 2021, Algorithm 1).

    ``out <= in``: partial identity ``I*``; ``out > in``: ``2^(-q/2) H_{2^q}[:out, :in]`` with
    ``q = ceil(log2(out))``. Conv weights ``(out, in, *kernel)``: every tap 0 except the centre tap
    ``(k0//2, k1//2, ...)``, which holds that ``(out, in)`` matrix.

    Args:
        w: ``(out, in)`` or ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        offset, full_shape, backend: as in :func:`partial_identity_`.
        n: for ``out > in``, the transform size of the Hadamard block instead of ``2^q``: a power
            of two or ``K * 2^k >= out`` (see :func:`hadamard_`); ``w = n^-1/2 H_n[:out, :in]``,
            the exact weight of ``HadamardLinear(in, out, n=n)``.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula (``zerofwht.reference.zero_init_matrix``)::

        w = torch.eye(out, in) if out <= in else \
            2 ** (-q / 2) * torch.tensor(scipy.linalg.hadamard(2 ** q))[:out, :in]
    """
    if n is not None:
        return _hadamard_n("zero_init_", w, None, n, offset, full_shape, backend, always=False)
    return _apply("zero_init_", w, _zero_rule, TAP_CENTRE, offset, full_shape, backend)


def _idi_noise(tau: float, noise_std: float, generator, tap_mode: int):
    """Replace each tau entry (one per row) by a draw from N(tau, noise_std^2); draw ``r`` is the
    one of global row ``r`` (R draws, whatever the shard), so shards agree with the full tensor."""
    def after(local: torch.Tensor, offset, full_shape):
        R, C, col_steps, tap_steps, tap_centre = logical_matrix(full_shape, tap_mode)
        dev, nd = local.device, local.dim()
        gdev = generator.device if generator is not None else dev
        ndtype = torch.float64 if local.dtype == torch.float64 else torch.float32
        draws = torch.empty(R, dtype=ndtype, device=gdev).normal_(tau, noise_std, generator=generator)
        rows = torch.arange(offset[0], offset[0] + local.shape[0], device=dev)
        col = rows % C
        # global index of the tau entry of each row, then local, then keep those inside the shard
        idx = [rows]
        if tap_mode == TAP_FLATTEN or nd == 2:
            rest = col
            for d in range(nd - 1, 0, -1):
                idx.insert(1, rest % full_shape[d])
                rest = rest // full_shape[d]
        else:
            idx.append(col)
            idx += [torch.full_like(rows, full_shape[d] // 2) for d in range(2, nd)]
        local_idx = [g - offset[d] for d, g in enumerate(idx)]
        keep = torch.ones_like(rows, dtype=torch.bool)
        for d, li in enumerate(local_idx):
            keep &= (li >= 0) & (li < local.shape[d])
        sel = [li[keep] for li in local_idx]
        vals = draws.to(dev)[rows[keep]] if gdev != dev else draws[rows[keep]]
        local[tuple(sel)] = vals.to(local.dtype)
    return after


def idi_(w: torch.Tensor, tau: float = 1.0, noise_std: float = 0.0,
         generator: Optional[torch.Generator] = None, *, offset: Optional[Sequence[int]] = None,
         full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""IDI_tau (IDInit): ``w[m, j] = tau`` iff ``m = j (mod in)``, else 0.

    ``out > in``: identities stacked down the rows; ``out <= in``: ``[tau I | 0]``. E.g. (5, 3):
    rows e0, e1, e2, e0, e1 (times tau). Conv ``(out, in, *kernel)``: this matrix at the centre tap
    (see :func:`idic_` for IDInit's patch-maintain conv rule).

    Args:
        w: ``(out, in)`` or ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        tau: the identity value.
        noise_std: optional loosening: each tau entry (one per row) is drawn from
            ``N(tau, noise_std^2)``; 0 (default) keeps it exactly tau. The draw of row ``m`` is the
            ``m``-th of ``out`` draws from ``generator`` (in the weight's dtype, fp32 for fp16 /
            bf16), so shards filled from identically seeded generators agree with the full weight.
        generator: ``torch.Generator`` for the noise (default: the global one of w's device).
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula (``zerofwht.reference.idi_matrix``)::

        w = torch.zeros(out, in); w[m, m % in] = tau  for every m
    """
    tau = _real(tau, "tau")
    noise_std = _real(noise_std, "noise_std", minimum=0.0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"idi_: generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    after = _idi_noise(tau, noise_std, generator, TAP_CENTRE) if noise_std > 0 else None
    return _apply("idi_", w, lambda f: (KIND_IDI, tau), TAP_CENTRE, offset, full_shape, backend,
                  after)


def idiz_(w: torch.Tensor, eps: float = 1e-6, *, offset: Optional[Sequence[int]] = None,
          full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""IDIZ_eps (IDInit, for the last layer of a residual branch): IDI_eps, plus ``-eps`` entries:

    * ``out < in``: columns ``out..in-1`` hold IDI_-eps: ``w[m, out + j] = -eps`` iff
      ``m = j (mod in - out)``;
    * ``out >= in``: ``w[m, (m + 1) mod in] = -eps`` (where this meets the ``+eps`` entry, i.e.
      ``in == 1``, ``-eps`` wins).

    E.g. (3, 5) in units of eps: [[1,0,0,-1,0],[0,1,0,0,-1],[0,0,1,-1,0]]. Conv weights: this
    matrix at the centre tap (see :func:`idizc_` for the patch-maintain rule).

    Args:
        w: ``(out, in)`` or ``(out, in, *kernel)`` floating tensor (or DTensor), any strides.
        eps: ``>= 0``.
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula: ``zerofwht.reference.idiz_matrix(out, in, eps)``.
    """
    eps = _real(eps, "eps", minimum=0.0)
    return _apply("idiz_", w, lambda f: (KIND_IDIZ, eps), TAP_CENTRE, offset, full_shape, backend)


def idic_(w: torch.Tensor, tau: float = 1.0, *, offset: Optional[Sequence[int]] = None,
          full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""IDIC_tau, IDInit's patch-maintain conv rule: IDI_tau of the weight viewed as
    ``(out, in * prod(kernel))`` in PyTorch's own order (``w.reshape(out, -1)``), viewed back.

    E.g. (4, 2, 3, 3) with tau = 1: ones at (0,0,0,0), (1,0,0,1), (2,0,0,2), (3,0,1,0). On a 2-D
    weight it equals :func:`idi_`.

    Args:
        w: ``(out, in, *kernel)`` (or ``(out, in)``) floating tensor (or DTensor), any strides.
        tau: the identity value.
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula::

        w = zerofwht.reference.idi_matrix(out, in * prod(kernel), tau).reshape(w.shape)
    """
    tau = _real(tau, "tau")
    return _apply("idic_", w, lambda f: (KIND_IDI, tau), TAP_FLATTEN, offset, full_shape, backend)


def idizc_(w: torch.Tensor, eps: float = 1e-6, *, offset: Optional[Sequence[int]] = None,
           full_shape: Optional[Sequence[int]] = None, backend: Optional[str] = None) -> torch.Tensor:
    r"""IDIZC_eps: IDIZ_eps of the weight viewed as ``(out, in * prod(kernel))``, viewed back.

    Args:
        w: ``(out, in, *kernel)`` (or ``(out, in)``) floating tensor (or DTensor), any strides.
        eps: ``>= 0``.
        offset, full_shape, backend: as in :func:`partial_identity_`.

    Returns:
        ``w``, filled in place.

    Equivalent dense formula::

        w = zerofwht.reference.idiz_matrix(out, in * prod(kernel), eps).reshape(w.shape)
    """
    eps = _real(eps, "eps", minimum=0.0)
    return _apply("idizc_", w, lambda f: (KIND_IDIZ, eps), TAP_FLATTEN, offset, full_shape, backend)
