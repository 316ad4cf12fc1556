// Host check of the CUDA kernel of zerofwht::fwht_kron (csrc/cuda/kron.cu) without a GPU: random
// cases (dtype, K, M, rows, d_in, d_out, row strides with gaps, +-1 and general bases) run through
// the launch checks and the kernel body emulated on the host (every thread of every block, the
// barriers as phase boundaries), compared with a double-precision reference within a per-dtype
// tolerance; outputs are poisoned (every element that must be written is checked, every gap
// element must keep its poison) and the input must be unchanged. Also: arguments the launcher
// must refuse. Built and run by tests/test_kron_cpp.py. Prints "kron_cuda_emulate: N failed of M".
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/kron.cuh"

using namespace zerofwht::cuda;

namespace {

double to_double(DType t, const void* p, int64_t i) {
  switch (t) {
    case DType::kFloat32: return static_cast<const float*>(p)[i];
    case DType::kFloat64: return static_cast<const double*>(p)[i];
    case DType::kFloat16: {
      __half_raw r;
      r.x = static_cast<const uint16_t*>(p)[i];
      return __half2float(__half(r));
    }
    default: {
      __nv_bfloat16_raw r;
      r.x = static_cast<const uint16_t*>(p)[i];
      return __bfloat162float(__nv_bfloat16(r));
    }
  }
}
void from_double(DType t, void* p, int64_t i, double v) {
  switch (t) {
    case DType::kFloat32: static_cast<float*>(p)[i] = float(v); break;
    case DType::kFloat64: static_cast<double*>(p)[i] = v; break;
    case DType::kFloat16: static_cast<uint16_t*>(p)[i] = __half_raw(__float2half_rn(float(v))).x; break;
    default: static_cast<uint16_t*>(p)[i] = __nv_bfloat16_raw(__float2bfloat16_rn(float(v))).x; break;
  }
}
int esize(DType t) { return t == DType::kFloat64 ? 8 : t == DType::kFloat32 ? 4 : 2; }

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 500;
  std::mt19937_64 rng(12345);
  auto uni = [&](int64_t lo, int64_t hi) { return lo + int64_t(rng() % uint64_t(hi - lo + 1)); };
  const int Ks[] = {1, 2, 3, 4, 5, 12, 20, 28, 40, 172};
  int failed = 0;
  for (int c = 0; c < cases; ++c) {
    const DType dt = DType(uni(0, 3));
    const int K = Ks[uni(0, 9)];
    const int log_m = int(uni(0, K >= 40 ? 6 : 9));
    const int64_t M = int64_t(1) << log_m, n = K * M;
    const int64_t rows = uni(1, 3);
    const int64_t d_in = uni(0, 3) == 0 ? uni(0, n) : n;
    const int64_t d_out = uni(0, 3) == 0 ? uni(1, n) : n;
    const int64_t xs = d_in + uni(0, 2) * 5, ys = d_out + uni(0, 2) * 3;
    const bool general = uni(0, 4) == 0;  // non-+-1 base: the kernel multiplies by the values
    std::vector<float> base(size_t(K) * K);
    for (auto& b : base) b = general ? float(uni(-8, 8)) / 4.0f : (rng() & 1 ? 1.0f : -1.0f);
    const int es = esize(dt);
    std::vector<unsigned char> x(size_t(rows * xs + 1) * es), y(size_t(rows * ys + 1) * es);
    for (int64_t i = 0; i < rows * xs; ++i)
      from_double(dt, x.data(), i, std::uniform_real_distribution<double>(-1, 1)(rng));
    const std::vector<unsigned char> x0 = x;
    for (int64_t i = 0; i < rows * ys; ++i) from_double(dt, y.data(), i, -777.0);  // poison
    const double poison = to_double(dt, y.data(), 0);  // -777 as the dtype stores it
    const double scale = uni(0, 1) ? 1.0 : 0.25;
    KronCudaParams p{x.data(), y.data(), base.data(), dt, rows, xs, ys, d_in, K, log_m, d_out, scale, 227 * 1024};
    if (!emulate_fwht_kron(p)) {
      std::printf("case %d: refused (K=%d log_m=%d)\n", c, K, log_m);
      ++failed;
      continue;
    }
    bool ok = x == x0;
    const double tol = dt == DType::kFloat64 ? 1e-12 : dt == DType::kFloat32 ? 1e-5 : dt == DType::kFloat16 ? 2e-3 : 1.6e-2;
    std::vector<double> z(n), w(n);
    for (int64_t r = 0; r < rows && ok; ++r) {
      for (int64_t j = 0; j < n; ++j) z[j] = j < d_in ? to_double(dt, x.data(), r * xs + j) : 0.0;
      for (int64_t i = 0; i < K; ++i)
        for (int64_t h = 1; h < M; h *= 2)
          for (int64_t a = 0; a < M; a += 2 * h)
            for (int64_t b = a; b < a + h; ++b) {
              const double u = z[i * M + b], v = z[i * M + b + h];
              z[i * M + b] = u + v;
              z[i * M + b + h] = u - v;
            }
      double mag = 0;
      for (int64_t i = 0; i < K; ++i)
        for (int64_t col = 0; col < M; ++col) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += double(base[i * K + k]) * z[k * M + col];
          w[i * M + col] = scale * s;
          mag = std::max(mag, std::fabs(w[i * M + col]));
        }
      for (int64_t j = 0; j < ys; ++j) {
        const double got = to_double(dt, y.data(), r * ys + j);
        if (j < d_out) ok = ok && std::fabs(got - w[j]) <= tol * (mag + 1.0) * (general ? 4.0 : 1.0);
        else ok = ok && got == poison;  // a gap between rows: never written
      }
    }
    if (!ok) {
      ++failed;
      if (failed <= 10)
        std::printf("case %d: MISMATCH dtype=%d K=%d M=%lld rows=%lld d_in=%lld d_out=%lld\n", c, int(dt), K,
                    (long long)M, (long long)rows, (long long)d_in, (long long)d_out);
    }
  }
  // Refusals: n beyond shared memory, d_out out of range, bad K.
  std::vector<float> b1(1, 1.0f);
  float xx[4] = {0}, yy[4] = {0};
  KronCudaParams bad{xx, yy, b1.data(), DType::kFloat32, 1, 4, 4, 4, 1, 2, 4, 1.0, 227 * 1024};
  int refusals = 0, expected = 0;
  auto refuse = [&](KronCudaParams q) { ++expected; refusals += !emulate_fwht_kron(q); };
  { KronCudaParams q = bad; q.log_m = 20; q.d_in = 0; q.d_out = 1; refuse(q); }  // 2^20 fp32 > 227 KB
  { KronCudaParams q = bad; q.d_out = 0; refuse(q); }
  { KronCudaParams q = bad; q.d_out = 5; refuse(q); }
  { KronCudaParams q = bad; q.K = 0; refuse(q); }
  { KronCudaParams q = bad; q.d_in = 5; refuse(q); }
  if (refusals != expected) {
    std::printf("refusals: %d of %d\n", refusals, expected);
    ++failed;
  }
  std::printf("kron_cuda_emulate: %d failed of %d\n", failed, cases + 1);
  return failed ? 1 : 0;
}
