r"""Deterministic initializers that write identity, Hadamard and IDI weights in place, on the
tensor's own device, for any size and shard by shard; and ``init_model_``, which applies a scheme
(ZerO, IDInit, ...) to a whole model.

They follow ``torch.nn.init``: a trailing underscore, in-place under ``no_grad`` (no autograd
history), the same tensor returned, ``generator=`` where randomness exists, a no-op with a warning
on meta tensors, fp16 / bf16 / fp32 / fp64. Weights are ``(out, in)`` (``nn.Linear``) or
``(out, in, *kernel)`` with 1-, 2- or 3-d kernels (``nn.Conv{1,2,3}d``; grouped convs use their
weight's shape ``(out, in / groups, *kernel)`` as is).

Every element is computed from its global index by ONE fused kernel launch that writes the tensor
once (op ``zerofwht::init_fill_``: C++ on CPU, CUDA or Triton on CUDA tensors, a chunked pure-PyTorch
fallback on any other device; see ``zerofwht._backends.INIT_BACKENDS``): no dense matrix is built
on the host, nothing is copied host to device, no intermediate of the weight's size is allocated.
Non-contiguous destinations (a transposed view, a slice of a bigger buffer) are written in place.

Shards: every initializer takes keyword ``offset=`` (global index of ``w[0, 0, ...]``, one entry
per dimension) and ``full_shape=`` (shape of the full logical weight) and fills exactly that block
of the full weight; a ``torch.distributed.tensor.DTensor`` (Shard / Replicate placements, any mesh)
is filled shard by shard from its placements, with no communication.

Conv weights: ``partial_identity_``, ``hadamard_``, ``zero_init_``, ``idi_`` and ``idiz_`` use the
ZerO / ``dirac_`` conv form (the ``(out, in)`` matrix at the centre tap ``(k0//2, k1//2, ...)``,
every other tap 0); ``idic_`` and ``idizc_`` use IDInit's patch-maintain form (IDI / IDIZ of
``w.reshape(out, -1)``).

Layout of the package: ``fill`` (the fill op, its backends' launch, shard / DTensor handling),
``initializers`` (the public rules), ``model`` (``init_model_``, ``register_rule``) and
``residual`` (which layers end a residual branch, roles of transformer weights).
"""
from .fill import (KIND_HADAMARD, KIND_IDI, KIND_IDIZ, KIND_NAMES, KIND_PARTIAL_IDENTITY,  # noqa: F401
                   KIND_ZEROS, TAP_CENTRE, TAP_FLATTEN, _backends, _check_op_args, fill_,
                   logical_matrix, value_bits)
from .initializers import (hadamard_, idi_, idic_, idiz_, idizc_, partial_identity_,  # noqa: F401
                           zero_init_)
from .model import SCHEMES, RuleContext, init_model_, register_rule  # noqa: F401

__all__ = [
    "partial_identity_",
    "hadamard_",
    "zero_init_",
    "idi_",
    "idiz_",
    "idic_",
    "idizc_",
    "init_model_",
    "register_rule",
    "SCHEMES",
]
