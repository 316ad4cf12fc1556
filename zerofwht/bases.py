r"""Built-in K x K Hadamard matrices, and the sizes ``n = K * 2^k`` the transform supports.

A Hadamard matrix of order K > 2 exists only when K is a multiple of 4 (conjectured: for every
such K). Writing ``n = m * 2^e`` with ``m`` odd, every Hadamard order with odd part ``m > 1`` is
``4m * 2^j``, so the transform of length ``n`` is built as

    H_n = H_K (kron) H_{2^k},   K = 4m (K = 1 when n is a power of two),   2^k = n / K,

with ``H_K`` the built-in matrix of this module and ``H_{2^k}`` Sylvester's (``scipy.linalg.
hadamard``). This is **the representation rule**: the smallest built-in K, i.e. the largest
power-of-two factor (the cheap O(log) part of the transform). So ``n = 40 * 2^k`` runs as
``H_20 (kron) H_{2^(k+1)}``; and ``hadamard_matrix(40)`` itself is ``H_20 (kron) H_2``, so the
dense matrix of every supported ``n`` is one well-defined matrix whatever factorization a
caller has in mind. A different K x K matrix (another library's ``had_40``, say) is passed as
``base=`` to :func:`zerofwht.fwht`.

Constructions of ``H_K``, K = 4m, m odd (first that applies; ``construction(K)`` names it):

* Paley I: ``q = K - 1`` a prime power (then q = 3 mod 4): ``H = I + [[0, 1^T], [-1, Q]]`` with
  Jacobsthal's ``Q[a, b] = chi(a - b)`` over GF(q) (``chi`` the quadratic character). Skew type,
  so ``H`` is NOT symmetric: the backward pass needs ``H_K^T``.
* Paley II: ``q = K/2 - 1`` a prime power (q = 1 mod 4): ``C = [[0, 1^T], [1, Q]]`` (symmetric
  conference matrix), ``H = C (kron) [[1, 1], [1, -1]] + I (kron) [[1, -1], [-1, -1]]``.
* Williamson: ``H = [[A, B, C, D], [-B, A, -D, C], [-C, D, A, -B], [-D, -C, B, A]]`` from four
  symmetric circulant +-1 matrices of order m with ``A^2 + B^2 + C^2 + D^2 = 4m I``. First rows
  (_WILLIAMSON below) as tabulated in SageMath (``sage/combinat/matrices/hadamard_matrix.py``,
  ``williamson_type_quadruples_smallcases``), who cite M. Hall, *Combinatorial Theory*, 2nd ed.,
  Wiley 1983 (m = 23, 29, 43) and S. London, *Constructing new Turyn type sequences, T-sequences
  and Hadamard matrices*, PhD thesis, UIC 2013 (m = 39).

Finite fields GF(p^e) (q = 27, 25, 49, 81, 121, 125, 243 here) are built in this module: elements
are the integers ``0..q-1`` read as base-p digit vectors (polynomial coefficients, lowest first),
reduced modulo the first monic irreducible polynomial of degree e in the order of
``_irreducible``. Every matrix is checked (``H H^T = K I``) when first built.

Built in: K = 1 and every K = 4m <= 252 (m odd > 1) except 188 and 236 (m = 47, 59: no Paley construction, and no
Williamson quadruple in the tables used). See ``BUILTIN_K`` / ``construction``.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch

__all__ = ["BUILTIN_K", "MAX_K", "MAX_N", "construction", "hadamard_base", "split", "is_supported",
           "supported_near", "unsupported_message", "check_base", "hadamard_matrix"]

MAX_K = 252
MAX_N = 1 << 30  # like the power-of-two transform: row offsets are int32 in the kernels

# Williamson quadruples: first rows of the symmetric circulants A, B, C, D ('+' = 1, '-' = -1).
# Data as tabulated by SageMath (see the module docstring for the literature it cites).
_WILLIAMSON = {
    23: ("++---+---+-++-+---+---+", "+-++-++--++++++--++-++-",
         "+++---++-+-++-+-++---++", "+++-+++-+------+-+++-++"),
    29: ("+++---++--+-+----+-+--++---++", "+-+---++--+-++++++-+--++---+-",
         "++++-++-+---++++++---+-++-+++", "++--+--+-+++-++++-+++-+--+--+"),
    39: ("+++--+-+-----+--++----++--+-----+-+--++", "+++--++-+---+-+--+----+--+-+---+-++--++",
         "++++---+--++----+-+--+-+----++--+---+++", "+---++-+-+-----+++-++-+++-----+-+-++---"),
    43: ("++---++++-+--+--++--------++--+--+-++++---+", "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++",
         "++-++++++----+-+--++-++-++--+-+----++++++-+", "+---++--++++-+-+++-++--++-+++-+-++++--++---"),
}
_WILLIAMSON_SOURCE = {23: "Hall 1983", 29: "Hall 1983", 39: "London 2013", 43: "Hall 1983"}


# ----------------------------------------------------------------------------------------------
# Small number theory and GF(p^e)
# ----------------------------------------------------------------------------------------------
def _prime_power(q: int) -> Optional[tuple]:
    """(p, e) with q = p^e, p prime, e >= 1; None otherwise."""
    if q < 2:
        return None
    p = next(d for d in range(2, q + 1) if q % d == 0)  # smallest factor: a prime
    e = 0
    while q % p == 0:
        q //= p
        e += 1
    return (p, e) if q == 1 else None


def _poly_mod(a: list, f: list, p: int) -> list:
    """a mod f over GF(p); coefficient lists, lowest degree first; f monic."""
    a = [c % p for c in a]
    while len(a) >= len(f):
        lead = a[-1]
        if lead:
            shift = len(a) - len(f)
            for i, c in enumerate(f):
                a[shift + i] = (a[shift + i] - lead * c) % p
        a.pop()
    return a


def _irreducible(p: int, e: int) -> list:
    """The first monic irreducible polynomial of degree e over GF(p) when the lower coefficients
    count up as a base-p number (lowest coefficient the fastest digit); lowest degree first."""
    if e == 1:
        return [0, 1]
    for code in range(p ** e):
        f = [(code // p ** i) % p for i in range(e)] + [1]
        if f[0] == 0:
            continue  # divisible by x
        reducible = False
        for d in range(1, e // 2 + 1):
            for dcode in range(p ** d):
                g = [(dcode // p ** i) % p for i in range(d)] + [1]
                if not any(_poly_mod(f, g, p)):
                    reducible = True
                    break
            if reducible:
                break
        if not reducible:
            return f
    raise AssertionError(f"no irreducible polynomial of degree {e} over GF({p})")  # never: one exists


def _quadratic_character(q: int) -> tuple:
    """(chi, sub) over GF(q): chi[a] in {0, 1, -1} for field element a (an int in 0..q-1), and
    sub(a, b) the element a - b."""
    p, e = _prime_power(q)
    f = _irreducible(p, e)

    def digits(a):
        return [(a // p ** i) % p for i in range(e)]

    def number(ds):
        return sum(c * p ** i for i, c in enumerate(ds))

    def square(a):
        da = digits(a)
        prod = [0] * (2 * e - 1)
        for i, x in enumerate(da):
            for j, y in enumerate(da):
                prod[i + j] += x * y
        return number(_poly_mod(prod, f, p) + [0] * e)

    squares = {square(a) for a in range(1, q)}
    chi = [0] + [1 if a in squares else -1 for a in range(1, q)]

    def sub(a, b):
        return number([(x - y) % p for x, y in zip(digits(a), digits(b))])

    return chi, sub


def _jacobsthal(q: int) -> torch.Tensor:
    chi, sub = _quadratic_character(q)
    return torch.tensor([[chi[sub(a, b)] for b in range(q)] for a in range(q)], dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# Constructions
# ----------------------------------------------------------------------------------------------
def _sylvester(n: int) -> torch.Tensor:
    h = torch.ones(1, 1, dtype=torch.float64)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def _paley1(q: int) -> torch.Tensor:
    qm = _jacobsthal(q)
    s = torch.zeros(q + 1, q + 1, dtype=torch.float64)
    s[0, 1:] = 1.0
    s[1:, 0] = -1.0
    s[1:, 1:] = qm
    return torch.eye(q + 1, dtype=torch.float64) + s


def _paley2(q: int) -> torch.Tensor:
    qm = _jacobsthal(q)
    c = torch.zeros(q + 1, q + 1, dtype=torch.float64)
    c[0, 1:] = 1.0
    c[1:, 0] = 1.0
    c[1:, 1:] = qm
    a = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
    return torch.kron(c, a) + torch.kron(torch.eye(q + 1, dtype=torch.float64), b)


def _circulant(row: str) -> torch.Tensor:
    v = torch.tensor([1.0 if ch == "+" else -1.0 for ch in row], dtype=torch.float64)
    m = v.numel()
    idx = (torch.arange(m)[None, :] - torch.arange(m)[:, None]) % m
    return v[idx]


def _williamson(m: int) -> torch.Tensor:
    a, b, c, d = (_circulant(r) for r in _WILLIAMSON[m])
    return torch.cat([torch.cat([a, b, c, d], 1), torch.cat([-b, a, -d, c], 1),
                      torch.cat([-c, d, a, -b], 1), torch.cat([-d, -c, b, a], 1)], 0)


def _recipe(k: int) -> Optional[tuple]:
    """(name, builder) for a K = 4m (m odd) or K = 1; None when not built in."""
    if k == 1:
        return "trivial [[1]]", lambda: torch.ones(1, 1, dtype=torch.float64)
    if k % 4 or (k // 4) % 2 == 0 or k == 4 or k > MAX_K:
        return None  # K = 4 is a power of two: n = 4 * 2^k runs with K = 1
    m = k // 4
    pp = _prime_power(k - 1)
    if pp:
        return f"Paley I over GF({k - 1}{'' if pp[1] == 1 else f' = {pp[0]}^{pp[1]}'})", \
            lambda: _paley1(k - 1)
    pp = _prime_power(2 * m - 1)
    if pp:
        return f"Paley II over GF({2 * m - 1}{'' if pp[1] == 1 else f' = {pp[0]}^{pp[1]}'})", \
            lambda: _paley2(2 * m - 1)
    if m in _WILLIAMSON:
        return f"Williamson, m = {m} ({_WILLIAMSON_SOURCE[m]})", lambda: _williamson(m)
    return None


BUILTIN_K = tuple(k for k in range(1, MAX_K + 1) if _recipe(k) is not None)


def construction(k: int) -> str:
    """How the built-in ``H_K`` is made (raises ValueError for a K that is not built in)."""
    r = _recipe(k) if isinstance(k, int) else None
    if r is None:
        raise ValueError(f"K={k!r} is not a built-in Hadamard order; built in: {list(BUILTIN_K)}")
    return r[0]


@functools.lru_cache(maxsize=None)
def _base64(k: int) -> torch.Tensor:
    h = _recipe(k)[1]()
    gram = h @ h.T
    if h.shape != (k, k) or not torch.equal(h.abs(), torch.ones_like(h)) or \
            not torch.equal(gram, k * torch.eye(k, dtype=torch.float64)):
        raise AssertionError(f"built-in Hadamard matrix of order {k} failed H H^T = K I")
    return h


_DEVICE_CACHE: dict = {}


def hadamard_base(k: int, dtype: Optional[torch.dtype] = None, device=None) -> torch.Tensor:
    """The built-in ``K x K`` Hadamard matrix ``H_K`` (entries +-1), for K in ``BUILTIN_K``.

    Cached per (K, dtype, device): treat the result as read-only. ``dtype`` defaults to
    float32 (what the kernels take)."""
    if isinstance(k, bool) or not isinstance(k, int) or _recipe(k) is None:
        raise ValueError(f"hadamard_base: K={k!r} is not a built-in Hadamard order; built in: "
                         f"{list(BUILTIN_K)}")
    dtype = dtype or torch.float32
    device = torch.device(device) if device is not None else torch.device("cpu")
    key = (k, dtype, device)
    t = _DEVICE_CACHE.get(key)
    if t is None:
        t = _base64(k).to(dtype=dtype, device=device).contiguous()
        _DEVICE_CACHE[key] = t
    return t


# ----------------------------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------------------------
def split(n: int) -> Optional[tuple]:
    """``(K, 2^k)`` with ``n = K * 2^k`` by the representation rule (K = 1 for a power of two,
    else K = 4 * odd part of n), or None when n is not supported."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n > MAX_N:
        return None
    p = n & -n  # largest power of two dividing n
    odd = n // p
    if odd == 1:
        return 1, n
    k = 4 * odd
    if p < 4 or k not in BUILTIN_K:
        return None
    return k, n // k


def is_supported(n: int) -> bool:
    return split(n) is not None


def supported_near(n: int, count: int = 3) -> tuple:
    """The supported sizes nearest to n: up to ``count`` below (largest first) and ``count`` at or
    above (smallest first), as two lists."""
    sizes = set()
    for k in BUILTIN_K:
        p = 1
        while k * p <= MAX_N:
            sizes.add(k * p)
            p *= 2
    below = sorted((s for s in sizes if s < n), reverse=True)[:count]
    above = sorted(s for s in sizes if s >= n)[:count]
    return below, above


def unsupported_message(n: int, what: str = "n") -> str:
    below, above = supported_near(n)
    near = ", ".join(f"{s} = {_describe(s)}" for s in sorted(below + above))
    return (f"{what}={n} is not a supported transform size: sizes are n = K * 2^k with K = 1 or K "
            f"= 4 * (odd part of n) a built-in Hadamard order (K in {list(BUILTIN_K)}; "
            f"K > 1 needs 4 | n); nearest supported: {near}")


def _describe(s: int) -> str:
    k, p = split(s)
    return f"2^{p.bit_length() - 1}" if k == 1 else f"{k}*2^{p.bit_length() - 1}"


def hadamard_matrix(n: int, base: Optional[torch.Tensor] = None, dtype=None, device=None) -> torch.Tensor:
    """Dense ``H_n = H_K (kron) H_{n/K}`` (fp64 unless ``dtype``); ``base`` replaces H_K."""
    if base is not None:
        k = check_base(base, "base")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 or n % k or (n // k) & (n // k - 1):
            raise ValueError(f"hadamard_matrix: n={n!r} must be K * 2^k for the base's K={k}")
        hk = base.detach().to(dtype=torch.float64, device="cpu")
        p = n // k
    else:
        s = split(n)
        if s is None:
            raise ValueError(f"hadamard_matrix: {unsupported_message(n)}")
        k, p = s
        hk = _base64(k)
    h = torch.kron(hk, _sylvester(p)) if k > 1 else _sylvester(p) * hk[0, 0]
    return h.to(dtype=dtype or torch.float64, device=device)


def check_base(base, name: str = "base", *, values: bool = True) -> int:
    """Validate a user-given K x K Hadamard matrix; returns K. ``values=False`` checks the type
    and shape only (e.g. while torch.compile traces, where data is not available)."""
    if not isinstance(base, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (a K x K Hadamard matrix), got "
                        f"{type(base).__name__}")
    if base.dim() != 2 or base.shape[0] != base.shape[1] or base.shape[0] < 1:
        raise ValueError(f"{name} must be a square K x K matrix, got shape {tuple(base.shape)}")
    if not (base.dtype.is_floating_point or base.dtype in (torch.int8, torch.int16, torch.int32,
                                                           torch.int64)):
        raise TypeError(f"{name} must have a real floating or integer dtype, got {base.dtype}")
    k = base.shape[0]
    if k > MAX_K:
        raise ValueError(f"{name} has order K={k}; the kernels take K <= {MAX_K}")
    if values and not base.is_meta:
        h = base.detach().to(device="cpu", dtype=torch.float64)
        if not torch.equal(h.abs(), torch.ones_like(h)):
            bad = (h.abs() != 1).nonzero()[0].tolist()
            raise ValueError(f"{name} must have entries +1/-1 only; {name}[{bad[0]}, {bad[1]}] = "
                             f"{h[bad[0], bad[1]].item()}")
        gram = h @ h.T
        if not torch.equal(gram, k * torch.eye(k, dtype=torch.float64)):
            off = (gram - k * torch.eye(k, dtype=torch.float64)).nonzero()[0].tolist()
            raise ValueError(f"{name} is not a Hadamard matrix: rows {off[0]} and {off[1]} give "
                             f"(H H^T)[{off[0]}, {off[1]}] = {gram[off[0], off[1]].item():g}, "
                             f"expected {k if off[0] == off[1] else 0} (H H^T = K I)")
    return k
