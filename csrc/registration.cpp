// The one registration block: every schema of the compiled ops. Implementations are registered
// by the device glue files (cpu/ops.cpp, cuda/ops.cu); the Python module `zerofwht._C`, imported
// for these registrations, is defined apart (python_module.cpp).
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

TORCH_LIBRARY(zerofwht, m) {
  // y = scale * (H_n pad_n(x))[..., :out_features] over the last dimension of x (..., d_in).
  m.def("fwht(Tensor x, int n, int out_features, float scale) -> Tensor");
  // The same, written into `out` (shape (..., out_features), any strides).
  m.def("fwht_out(Tensor x, int n, int out_features, float scale, Tensor(a!) out) -> ()");
  // In place: x <- scale * H_n x, needs x.shape[-1] == n.
  m.def("fwht_inplace(Tensor(a!) x, float scale) -> ()");
  // Order K * 2^k: y = scale * ((H_K kron H_{n/K}) pad_n(x))[..., :out_features], base = H_K
  // (K x K float32, entries +1 / -1, on x's device); x's row as a K x (n/K) matrix X gives H_K X H.
  m.def("fwht_kron(Tensor x, Tensor base, int n, int out_features, float scale) -> Tensor");

  // ---- fused weight materialization (zerofwht.init) ----------------------------------------------
  // Fills the local tensor w, element 0 at global index `offset` of a weight of shape
  // `full_shape`, with the rule `kind` (0 zeros, 1 partial identity, 2 Hadamard, 3 IDI, 4 IDIZ)
  // times `value`; tap_mode 0 = flatten kernel dims into columns, 1 = only the centre tap holds
  // the (out, in) matrix. See csrc/shared/init_params.h and zerofwht/init.py.
  m.def("init_fill_(Tensor(a!) w, int kind, float value, int tap_mode, int[] offset, "
        "int[] full_shape) -> ()");
}

// The mutating ops have no derivative (the functional op does, registered from Python). These
// fallbacks make autograd refuse them when a gradient would be needed and, above all, bump the
// version counter of the tensor they write, so a tensor saved for backward and then overwritten
// is reported instead of silently giving wrong gradients.
TORCH_LIBRARY_IMPL(zerofwht, Autograd, m) {
  m.impl("fwht_out", torch::autograd::autogradNotImplementedFallback());
  m.impl("fwht_inplace", torch::autograd::autogradNotImplementedFallback());
}
TORCH_LIBRARY_IMPL(zerofwht, ADInplaceOrView, m) {
  m.impl("fwht_out", torch::autograd::autogradNotImplementedInplaceOrViewFallback());
  m.impl("fwht_inplace", torch::autograd::autogradNotImplementedInplaceOrViewFallback());
}
