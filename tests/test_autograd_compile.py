"""Autograd (fp64 gradcheck / gradgradcheck), torch.library.opcheck of every op, and
torch.compile(fullgraph=True) on CPU compared with eager."""
from __future__ import annotations

import pytest
import torch

import zerofwht

from conftest import assert_close_to_reference, dense_reference, dtype_id, make_input

# (shape, n, dim, out_features, norm): d_in = shape[dim]
GRAD_CASES = [
    pytest.param((3, 8), None, -1, None, None, id="3x8-square"),
    pytest.param((2, 5), 8, -1, 3, None, id="2x5-n8-dout3"),
    pytest.param((2, 3), 16, -1, 11, "ortho", id="2x3-n16-dout11-ortho"),
    pytest.param((4, 6, 2), 8, 1, 5, "forward", id="4x6x2-dim1-n8-dout5-forward"),
    pytest.param((7, 2), 8, 0, 8, None, id="7x2-dim0-n8"),
    pytest.param((1,), 1, -1, 1, None, id="1-n1"),
]


def _fn(backend, n, dim, out_features, norm):
    return lambda x: zerofwht.fwht(x, n, dim, norm, out_features=out_features, backend=backend)


@pytest.mark.parametrize("shape,n,dim,out_features,norm", GRAD_CASES)
def test_gradcheck(backend, shape, n, dim, out_features, norm):
    x = make_input(shape, torch.float64, seed=len(shape)).requires_grad_()
    assert torch.autograd.gradcheck(_fn(backend, n, dim, out_features, norm), (x,))


@pytest.mark.parametrize("shape,n,dim,out_features,norm", GRAD_CASES)
def test_gradgradcheck(backend, shape, n, dim, out_features, norm):
    x = make_input(shape, torch.float64, seed=len(shape)).requires_grad_()
    assert torch.autograd.gradgradcheck(_fn(backend, n, dim, out_features, norm), (x,))


def test_gradient_is_transposed_operator(backend):
    # grad_x = s * (H_n pad_n(grad_y))[..., :d_in], checked against the dense reference.
    x = make_input((3, 5), torch.float64, seed=1).requires_grad_()
    g = make_input((3, 11), torch.float64, seed=2)
    zerofwht.fwht(x, 16, out_features=11, scale=0.3, backend=backend).backward(g)
    assert_close_to_reference(x.grad, dense_reference(g, 16, out_features=5, scale=0.3), torch.float64, 16)


def test_gradcheck_hadamard_transform():
    x = make_input((2, 5), torch.float64, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: zerofwht.hadamard_transform(t, scale=0.5), (x,))


def test_gradcheck_inplace_on_non_leaf(backend):
    x = make_input((3, 8), torch.float64, seed=4).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: zerofwht.fwht_(t * 1.0, norm="ortho", backend=backend), (x,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=dtype_id)
def test_half_and_single_gradients_keep_dtype(backend, dtype):
    x = make_input((2, 6), dtype, seed=5).requires_grad_()
    zerofwht.fwht(x, out_features=3, backend=backend).sum().backward()
    assert x.grad.dtype == dtype and tuple(x.grad.shape) == (2, 6)


# ----------------------------------------------------------------------------------------------
# torch.library.opcheck
# ----------------------------------------------------------------------------------------------
def _functional_samples():
    return [
        pytest.param((make_input((3, 5), torch.float32, 1), 8, 6, 0.5), id="fp32-3x5-n8-dout6"),
        pytest.param((make_input((2, 3, 8), torch.float64, 2).requires_grad_(), 8, 8, 1.0),
                     id="fp64-2x3x8-grad"),
        pytest.param((make_input((4, 1), torch.float64, 3).requires_grad_(), 4, 2, 1.0),
                     id="fp64-4x1-n4-dout2-grad"),
        pytest.param((make_input((16, 3), torch.float32, 4).t(), 16, 9, -1.0), id="fp32-transposed-dout9"),
        pytest.param((make_input((2, 12), torch.float32, 5).requires_grad_(), 16, 16, 0.25),
                     id="fp32-2x12-n16-grad"),
    ]


@pytest.mark.parametrize("op_name", ["fwht", "fwht_torch"])
@pytest.mark.parametrize("args", _functional_samples())
def test_opcheck_functional(op_name, args):
    torch.library.opcheck(getattr(torch.ops.zerofwht, op_name), args)


@pytest.mark.parametrize("args", [
    pytest.param(lambda: (make_input((3, 5), torch.float32, 1), 8, 6, 0.5, torch.empty(3, 6)),
                 id="fp32-3x5-n8-dout6"),
    pytest.param(lambda: (make_input((2, 3, 8), torch.float64, 2), 8, 8, 1.0,
                          torch.empty(2, 3, 8, dtype=torch.float64)), id="fp64-2x3x8"),
    pytest.param(lambda: (make_input((4, 7), torch.float64, 3), 8, 2, 1.0,
                          torch.empty(2, 4, dtype=torch.float64).t()), id="fp64-4x7-dout2-transposed-out"),
])
def test_opcheck_fwht_out(args):
    torch.library.opcheck(torch.ops.zerofwht.fwht_out, args())


@pytest.mark.parametrize("args", [
    pytest.param(lambda: (make_input((3, 8), torch.float32, 1), 0.5), id="fp32-3x8"),
    pytest.param(lambda: (make_input((2, 2, 16), torch.float64, 2), 1.0), id="fp64-2x2x16"),
    pytest.param(lambda: (make_input((5, 1), torch.float64, 3), 2.0), id="fp64-5x1"),
])
def test_opcheck_fwht_inplace(args):
    torch.library.opcheck(torch.ops.zerofwht.fwht_inplace, args())


# ----------------------------------------------------------------------------------------------
# torch.compile
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend_name", ["cpp", "torch", None], ids=["cpp", "torch", "auto"])
def test_compile_fullgraph_forward_and_backward(backend_name):
    def f(x, w):
        y = zerofwht.fwht(x, 16, 0, "ortho", out_features=7, backend=backend_name)
        z = zerofwht.hadamard_transform(y * w, scale=0.5)
        return (z.sin() * 2).sum(dim=1)

    x = make_input((11, 3, 6), torch.float32, seed=1)
    w = make_input((7, 3, 6), torch.float32, seed=2)
    x_eager = x.clone().requires_grad_()
    x_comp = x.clone().requires_grad_()

    torch._dynamo.reset()
    try:
        compiled = torch.compile(f, fullgraph=True, backend="inductor")
        y_eager = f(x_eager, w)
        y_comp = compiled(x_comp, w)
        torch.testing.assert_close(y_comp, y_eager, rtol=1e-5, atol=1e-5)
        g = make_input(y_eager.shape, torch.float32, seed=3)
        y_eager.backward(g)
        y_comp.backward(g)
        torch.testing.assert_close(x_comp.grad, x_eager.grad, rtol=1e-5, atol=1e-5)
    finally:
        torch._dynamo.reset()


# ----------------------------------------------------------------------------------------------
# Forward-mode AD (the transform is linear: its JVP is the same transform of the tangent) and
# the call below autograd when no gradient can flow
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("dim,n,d_out", [(-1, 16, 16), (-1, 16, 5), (0, 8, 8)])
def test_forward_mode_ad_dual_tensors(backend, dim, n, d_out):
    import torch.autograd.forward_ad as fwAD
    x = torch.randn(6, 6, dtype=torch.float64)
    t = torch.randn(6, 6, dtype=torch.float64)
    f = lambda a: zerofwht.fwht(a, n, dim, norm="ortho", out_features=d_out, backend=backend)  # noqa: E731
    with fwAD.dual_level():
        y = f(fwAD.make_dual(x, t))
        primal, tangent = fwAD.unpack_dual(y)
    assert tangent is not None, "the tangent was dropped"
    torch.testing.assert_close(primal, f(x), rtol=0, atol=0)
    torch.testing.assert_close(tangent, f(t), rtol=0, atol=0)
    _, jvp_out = torch.func.jvp(f, (x,), (t,))
    torch.testing.assert_close(jvp_out, f(t), rtol=0, atol=0)


def test_forward_mode_ad_refused_by_out_and_in_place():
    import torch.autograd.forward_ad as fwAD
    x = torch.randn(2, 8, dtype=torch.float64)
    with fwAD.dual_level():
        d = fwAD.make_dual(x, torch.randn_like(x))
        with pytest.raises(RuntimeError, match=r"out=.*does not support forward-mode AD"):
            zerofwht.fwht(d, out=torch.empty(2, 8, dtype=torch.float64))
        with pytest.raises(RuntimeError, match=r"fwht_ does not support forward-mode AD"):
            zerofwht.fwht_(d)


@pytest.mark.parametrize("backend", ["cpp", "torch"])
def test_no_grad_paths_give_plain_tensors_and_grad_paths_record(backend):
    x = torch.randn(3, 8, requires_grad=True)
    with torch.no_grad():
        y = zerofwht.fwht(x, backend=backend)
    assert not y.requires_grad and y.grad_fn is None
    y2 = zerofwht.fwht(x.detach(), backend=backend)
    assert not y2.requires_grad
    torch.testing.assert_close(y, y2, rtol=0, atol=0)
    y3 = zerofwht.fwht(x, norm="ortho", backend=backend)
    assert y3.requires_grad and y3.grad_fn is not None
    y3.sum().backward()
    torch.testing.assert_close(x.grad, zerofwht.fwht(torch.ones(3, 8), norm="ortho"), rtol=1e-6, atol=1e-6)
    with torch.inference_mode():
        y4 = zerofwht.fwht(torch.randn(3, 8), backend=backend)
    assert y4.is_inference()
