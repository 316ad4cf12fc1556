// Host check of the CUDA Walsh-Hadamard kernels without a GPU (built and run by
// scripts/aot_nvcc.sh, which tests/test_fwht_cuda_aot.py calls). Three parts:
//
//   1. layout: for every dtype and every single-pass length, the index arithmetic of
//      fwht_cuda_plan.h, exhaustively: each phase places every element of a row exactly once, each
//      butterfly stage pairs the elements that differ in exactly its bit, every bit is taken by
//      exactly one stage, the shared-memory swizzle is a permutation inside 16-byte chunks; the
//      same for every round of the column kernel (pass B) over all its shapes;
//   2. bank conflicts of the row kernel's shared-memory exchange (must be conflict-free) and of
//      the column kernel's tile (reported);
//   3. transforms: random cases (dtype, n, rows, d_in, d_out, strides, misaligned bases, in place,
//      a device's shared-memory size, which moves the single/multi-pass boundary) run through the
//      launch plan and the kernel bodies on the host (emulate_fwht), compared BIT FOR BIT with an
//      independent butterfly (stages in increasing distance, fp32 accumulation for half types,
//      one rounding at the store), with poisoned outputs (nothing outside the written elements may
//      change) and an untouched input.
// Prints "N mismatches" lines; exit status 0 when everything agrees.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/fwht.cuh"
#include "cuda/fwht_plan.h"
#include "emulate_rng.h"

using namespace zerofwht::cuda;

namespace {

int failures = 0;
#define CHECK(cond, ...)                       \
  do {                                         \
    if (!(cond)) {                             \
      if (++failures <= 30) {                  \
        std::printf("FAIL %s:%d: ", __FILE__, __LINE__); \
        std::printf(__VA_ARGS__);              \
        std::printf("\n");                     \
      }                                        \
    }                                          \
  } while (0)

EmulateRng rng{0x243F6A8885A308D3ull};
uint64_t next_u64() { return rng.next_u64(); }
int64_t uniform(int64_t lo, int64_t hi) { return rng.uniform(lo, hi); }
double normal() {  // Box-Muller
  const double u1 = (double(next_u64() >> 11) + 0.5) / 9007199254740992.0;
  const double u2 = double(next_u64() >> 11) / 9007199254740992.0;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

const DType kTypes[4] = {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kBFloat16};
const char* name(DType t) {
  return t == DType::kFloat32 ? "fp32" : t == DType::kFloat64 ? "fp64" : t == DType::kFloat16 ? "fp16" : "bf16";
}
int ebytes(DType t) { return t == DType::kFloat64 ? 8 : t == DType::kFloat32 ? 4 : 2; }
int abytes(DType t) { return t == DType::kFloat64 ? 8 : 4; }

// ---- 1. layout -----------------------------------------------------------------------------------
void check_row_layout() {
  int configs = 0;
  for (DType t : kTypes)
    for (int ln = 0; ln <= kMaxRowLogN; ++ln) {
      const RowConfig c = row_config(ln, ebytes(t), abytes(t));
      if (c.smem_bytes > 227 * 1024) continue;  // never instantiated (fp64 at 2^15)
      ++configs;
      const int n = 1 << ln, e = 1 << c.log_e, tpr = n / e, k = 1 << c.log_k;
      CHECK(c.log_e >= 0 && c.log_lanes >= 0 && c.log_lanes <= 5 && c.log_warps >= 0 && c.log_k >= 0,
            "%s n=2^%d: bad config e=%d lanes=%d warps=%d k=%d", name(t), ln, c.log_e, c.log_lanes, c.log_warps, c.log_k);
      CHECK(c.log_e + c.log_lanes + c.log_warps == ln, "%s n=2^%d: bits do not add up", name(t), ln);
      CHECK(c.threads == c.rows_per_block * tpr && c.threads <= 1024 && c.threads % 32 == 0 || c.threads < 32,
            "%s n=2^%d: %d threads for %d rows of %d", name(t), ln, c.threads, c.rows_per_block, tpr);
      CHECK(c.threads % 32 == 0, "%s n=2^%d: %d threads is not a whole number of warps", name(t), ln, c.threads);
      CHECK(c.log_warps == 0 || c.log_lanes == 5, "%s n=2^%d: several warps per row need full warps", name(t), ln);
      CHECK(ln <= ilog2(16 / ebytes(t)) || e * ebytes(t) >= 16, "%s n=2^%d: under 16 bytes per thread", name(t), ln);
      std::vector<int> seen_a(n, 0), seen_b(n, 0);
      for (int tr = 0; tr < tpr; ++tr)
        for (int j = 0; j < e; ++j) {
          const int ia = index_a(c, tr, j), ib = index_b(c, tr, j);
          CHECK(ia >= 0 && ia < n && ib >= 0 && ib < n, "%s n=2^%d: index out of the row", name(t), ln);
          if (ia >= 0 && ia < n) ++seen_a[ia];
          if (ib >= 0 && ib < n) ++seen_b[ib];
          for (int d = 1; d < e; d <<= 1)  // thread stages: registers j, j|d hold i, i + d
            if (!(j & d)) CHECK(index_a(c, tr, j | d) == ia + d, "%s n=2^%d: thread stage %d", name(t), ln, d);
          for (int b = 0; b < c.log_lanes; ++b)  // lane stages: thread tr ^ 2^b holds i ^ 2^(e+b)
            CHECK(index_a(c, tr ^ (1 << b), j) == (ia ^ (1 << (c.log_e + b))), "%s n=2^%d: lane stage %d", name(t), ln, b);
          for (int d = k; d < e; d <<= 1)  // warp stages: slots j, j|d hold i, i + d * 32E/K... exactly the warp bit
            if (!(j & d))
              CHECK(index_b(c, tr, j | d) == ib + (d / k) * (e << 5), "%s n=2^%d: warp stage %d", name(t), ln, d);
          if (c.log_warps > 0 && j % k + 1 < k)  // runs of K adjacent columns (stores, smem loads)
            CHECK(index_b(c, tr, j + 1) == ib + 1, "%s n=2^%d: phase B run", name(t), ln);
        }
      for (int i = 0; i < n; ++i)
        CHECK(seen_a[i] == 1 && (c.log_warps == 0 || seen_b[i] == 1), "%s n=2^%d: element %d held %d/%d times",
              name(t), ln, i, seen_a[i], seen_b[i]);
      if (c.log_warps > 0) {  // the swizzle: a permutation that keeps 16-byte chunks whole
        const int va = 16 / abytes(t);
        std::vector<int> seen(n, 0);
        for (int i = 0; i < n; ++i) {
          const int s = smem_index(c, abytes(t), i);
          CHECK(s >= 0 && s < n, "%s n=2^%d: smem index out of range", name(t), ln);
          if (s >= 0 && s < n) ++seen[s];
          CHECK(s % va == i % va, "%s n=2^%d: swizzle moves an element inside its chunk", name(t), ln);
        }
        for (int i = 0; i < n; ++i) CHECK(seen[i] == 1, "%s n=2^%d: smem slot %d used %d times", name(t), ln, i, seen[i]);
        CHECK(c.rows_per_block * n * abytes(t) == c.smem_bytes, "%s n=2^%d: smem size", name(t), ln);
      }
    }
  std::printf("layout: %d row configurations checked\n", configs);
}

void check_col_layout() {
  int configs = 0;
  const int smems[3] = {227 * 1024, 99 * 1024, 48 * 1024};
  for (int ab : {4, 8})
    for (int sm : smems)
      for (int l2 = 10; l2 <= kMaxRowLogN; ++l2)
        for (int l1 = 1; l1 <= kMaxColLogN; ++l1) {
          const ColConfig c = col_config(l1, l2, ab, sm);
          if (c.smem_bytes > sm) continue;
          ++configs;
          CHECK(c.log_c <= l2 && c.log_c >= 0, "col n1=2^%d n2=2^%d: log_c=%d", l1, l2, c.log_c);
          CHECK(c.rounds * c.log_slots >= l1, "col n1=2^%d: %d rounds of %d bits", l1, c.rounds, c.log_slots);
          int sum = 0;
          for (int k = 0; k < c.rounds; ++k) {
            const int b = round_bits(c, k);
            CHECK(b >= 1 && b <= c.log_slots && round_first_bit(c, k) == sum, "col n1=2^%d round %d: %d bits", l1, k, b);
            sum += b;
          }
          CHECK(sum == l1, "col n1=2^%d: rounds take %d bits", l1, sum);
          const int lt = l1 + c.log_c;
          if (lt > 20) continue;  // the bijection checks below are O(tile)
          if (c.rounds > 1) {  // the shared-memory placement of the tile: a permutation
            std::vector<int> seen(size_t(1) << lt, 0);
            for (int i1 = 0; i1 < (1 << l1); ++i1)
              for (int col = 0; col < (1 << c.log_c); ++col) {
                const int ti = tile_index(c, i1, col);
                CHECK(ti >= 0 && ti < (1 << lt), "col n1=2^%d: tile index out of range", l1);
                if (ti >= 0 && ti < (1 << lt)) ++seen[ti];
              }
            for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == 1, "col n1=2^%d: tile slot %zu used %d times", l1, i, seen[i]);
            CHECK((int64_t(1) << lt) * ab == c.smem_bytes, "col n1=2^%d: smem size", l1);
          }
          for (int k = 0; k < c.rounds; ++k) {
            std::vector<int> seen(size_t(1) << lt, 0);
            const int b = round_bits(c, k), b0 = round_first_bit(c, k);
            for (int64_t u = 0; u < (int64_t(1) << log_units(c)); ++u)
              for (int j = 0; j < (1 << c.log_slots); ++j) {
                int i1 = 0, col = 0;
                if (!col_position(c, k, u, j, &i1, &col)) continue;
                CHECK(i1 >= 0 && i1 < (1 << l1) && col >= 0 && col < (1 << c.log_c), "col position out of the tile");
                ++seen[(size_t(i1) << c.log_c) + col];
                for (int s = 0; s < b; ++s)
                  if (!(j & (1 << s))) {
                    int i1p = 0, colp = 0;
                    const bool okp = col_position(c, k, u, j | (1 << s), &i1p, &colp);
                    CHECK(okp && colp == col && i1p == i1 + (1 << (b0 + s)),
                          "col n1=2^%d round %d: slot %d's partner at bit %d", l1, k, j, s);
                  }
              }
            for (size_t i = 0; i < seen.size(); ++i)
              CHECK(seen[i] == 1, "col n1=2^%d n2=2^%d round %d: tile element %zu seen %d times", l1, l2, k, i, seen[i]);
          }
        }
  std::printf("layout: %d column configurations checked\n", configs);
}

// ---- 2. bank conflicts ------------------------------------------------------------------------
void check_banks() {
  int worst_col = 1;
  for (DType t : kTypes) {
    for (int ln = 0; ln <= kMaxRowLogN; ++ln) {
      const BankReport r = bank_conflicts_row(ln, t);
      if (r.row_store < 0) continue;
      CHECK(r.row_store == 1 && r.row_load == 1, "%s n=2^%d: shared-memory exchange has %d-way / %d-way bank conflicts",
            name(t), ln, r.row_store, r.row_load);
    }
    for (int l1 = 1; l1 <= kMaxColLogN; ++l1) {
      const int w = bank_conflicts_col(l1, kMaxRowLogN - (t == DType::kFloat64), t);
      worst_col = w > worst_col ? w : worst_col;
    }
  }
  std::printf("banks: row exchange conflict-free checked; column tile worst %d-way\n", worst_col);
}

// ---- 3. transforms -----------------------------------------------------------------------------
double to_double(DType t, const unsigned char* p) {
  switch (t) {
    case DType::kFloat32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::kFloat64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::kFloat16: { __half_raw r; std::memcpy(&r.x, p, 2); return __half2float(__half(r)); }
    default: { __nv_bfloat16_raw r; std::memcpy(&r.x, p, 2); return __bfloat162float(__nv_bfloat16(r)); }
  }
}
void from_double(DType t, double v, unsigned char* p) {  // the test's own rounding of a result
  switch (t) {
    case DType::kFloat32: { const float f = float(v); std::memcpy(p, &f, 4); break; }
    case DType::kFloat64: std::memcpy(p, &v, 8); break;
    case DType::kFloat16: { const __half_raw r = __float2half_rn(float(v)); std::memcpy(p, &r.x, 2); break; }
    default: { const __nv_bfloat16_raw r = __float2bfloat16_rn(float(v)); std::memcpy(p, &r.x, 2); break; }
  }
}

// The expected row: butterflies in increasing distance in the accumulator type, then the scale.
template <class A>
void reference_row(DType t, const unsigned char* x, int64_t d_in, int64_t n, int64_t d_out, double scale,
                   unsigned char* y) {
  const int eb = ebytes(t);
  std::vector<A> v(n, A(0));
  for (int64_t i = 0; i < d_in; ++i) v[i] = A(to_double(t, x + i * eb));
  for (int64_t d = 1; d < n; d <<= 1)
    for (int64_t i = 0; i < n; ++i)
      if (!(i & d)) {
        const A a = v[i], b = v[i + d];
        v[i] = a + b;
        v[i + d] = a - b;
      }
  for (int64_t i = 0; i < d_out; ++i) from_double(t, double(v[i] * A(scale)), y + i * eb);
}

bool same_bits(DType t, const unsigned char* a, const unsigned char* b) {
  const double va = to_double(t, a), vb = to_double(t, b);
  if (std::isnan(va) && std::isnan(vb)) return true;
  return std::memcmp(a, b, ebytes(t)) == 0;
}

int run_cases(int cases) {
  const int smems[5] = {227 * 1024, 163 * 1024, 99 * 1024, 48 * 1024, 32 * 1024};
  int mismatches = 0, multipass = 0, inplace = 0;
  for (int ci = 0; ci < cases; ++ci) {
    const DType t = kTypes[uniform(0, 3)];
    const int eb = ebytes(t);
    FwhtCudaParams p{};
    p.dtype = t;
    p.max_smem_bytes = smems[uniform(0, 4)];
    const int max_ln = std::min(max_log_n(t, p.max_smem_bytes), 19);
    // mostly the lengths around the single/multi-pass boundary and the configuration changes
    const int ln = int(uniform(0, 3) == 0 ? uniform(0, max_ln) : uniform(std::max(0, max_ln - 9), max_ln));
    p.n = int64_t(1) << ln;
    const int64_t max_rows = std::max<int64_t>(1, (int64_t(1) << 17) >> ln);
    p.rows = uniform(1, std::min<int64_t>(max_rows, uniform(0, 2) ? 3 : 700));
    p.d_in = uniform(0, 2) ? p.n : uniform(0, p.n);
    p.d_out = uniform(0, 2) ? p.n : uniform(1, p.n);
    p.scale = uniform(0, 1) ? 1.0 : (uniform(0, 1) ? 1.0 / std::sqrt(double(p.n)) : normal());
    const bool in_place = p.d_in == p.n && p.d_out == p.n && uniform(0, 3) == 0;
    const int64_t pad_x = uniform(0, 1) ? 0 : uniform(0, 9), pad_y = uniform(0, 1) ? 0 : uniform(0, 9);
    p.x_row_stride = std::max<int64_t>(p.d_in, 0) + pad_x;
    p.y_row_stride = in_place ? p.x_row_stride : p.d_out + pad_y;
    const int64_t off_x = uniform(0, 1) ? 0 : uniform(1, 7), off_y = in_place ? off_x : (uniform(0, 1) ? 0 : uniform(1, 7));
    const int64_t xs = off_x + (p.rows - 1) * p.x_row_stride + p.d_in + 8, ys = off_y + (p.rows - 1) * p.y_row_stride + p.d_out + 8;
    std::vector<unsigned char> xbuf(size_t(xs) * eb + 64), ybuf(size_t(ys) * eb + 64);
    unsigned char* xb = xbuf.data() + (64 - reinterpret_cast<uintptr_t>(xbuf.data()) % 64) % 64;  // 64-aligned
    unsigned char* yb = ybuf.data() + (64 - reinterpret_cast<uintptr_t>(ybuf.data()) % 64) % 64;
    for (int64_t i = 0; i < xs; ++i) from_double(t, normal() * (uniform(0, 20) == 0 ? 1e3 : 1.0), xb + i * eb);
    if (uniform(0, 30) == 0) from_double(t, NAN, xb + uniform(0, xs - 1) * eb);
    std::vector<unsigned char> poison(size_t(ys) * eb);
    for (auto& b : poison) b = static_cast<unsigned char>(next_u64());
    std::memcpy(yb, poison.data(), poison.size());
    const std::vector<unsigned char> x_orig(xb, xb + size_t(xs) * eb);
    unsigned char* xp = xb + off_x * eb;
    unsigned char* yp = in_place ? xp : yb + off_y * eb;
    p.x = xp;
    p.y = yp;
    // expected output, computed before the call (in place overwrites x)
    std::vector<unsigned char> expect(in_place ? x_orig : poison);
    unsigned char* ep = expect.data() + (in_place ? off_x : off_y) * eb;
    for (int64_t r = 0; r < p.rows; ++r) {
      const unsigned char* xr = x_orig.data() + (off_x + r * p.x_row_stride) * eb;
      unsigned char* er = ep + r * p.y_row_stride * eb;
      if (t == DType::kFloat64) reference_row<double>(t, xr, p.d_in, p.n, p.d_out, p.scale, er);
      else reference_row<float>(t, xr, p.d_in, p.n, p.d_out, p.scale, er);
    }
    const int64_t wsb = workspace_bytes(p);
    multipass += wsb > 0;
    inplace += in_place;
    std::vector<unsigned char> ws(size_t(wsb) + 256);
    void* wp = wsb ? ws.data() + (256 - reinterpret_cast<uintptr_t>(ws.data()) % 256) % 256 : nullptr;
    if (!emulate_fwht(p, wp)) {
      CHECK(false, "case %d: %s n=2^%d refused by the plan (smem %d)", ci, name(t), ln, p.max_smem_bytes);
      ++mismatches;
      continue;
    }
    const unsigned char* got = in_place ? xb : yb;
    int64_t bad = 0, first = -1;
    for (int64_t i = 0; i < (in_place ? xs : ys); ++i)
      if (!same_bits(t, got + i * eb, expect.data() + i * eb)) {
        if (first < 0) first = i;
        ++bad;
      }
    if (!in_place)
      CHECK(std::memcmp(xb, x_orig.data(), x_orig.size()) == 0, "case %d: x was modified", ci);
    if (bad) {
      ++mismatches;
      CHECK(false, "case %d: %s n=2^%d rows=%lld d_in=%lld d_out=%lld strides %lld/%lld offsets %lld/%lld smem %d%s: "
            "%lld elements differ (first at %lld: got %g, expected %g)", ci, name(t), ln, (long long)p.rows,
            (long long)p.d_in, (long long)p.d_out, (long long)p.x_row_stride, (long long)p.y_row_stride,
            (long long)off_x, (long long)off_y, p.max_smem_bytes, in_place ? " in place" : "", (long long)bad,
            (long long)first, to_double(t, got + first * eb), to_double(t, expect.data() + first * eb));
    }
  }
  std::printf("transforms: %d cases (%d multi-pass, %d in place), %d mismatches\n", cases, multipass, inplace, mismatches);
  return mismatches;
}

void check_refusals() {  // arguments outside the contract are refused, nothing runs
  float buf[4] = {1, 2, 3, 4};
  FwhtCudaParams p{buf, buf, DType::kFloat32, 1, 4, 4, 4, 4, 4, 1.0, 227 * 1024};
  CHECK(emulate_fwht(p, nullptr), "a valid call was refused");
  FwhtCudaParams q = p;
  q.n = 3;
  CHECK(!emulate_fwht(q, nullptr) && launch_fwht(q, nullptr, nullptr) == cudaErrorInvalidValue, "n=3 accepted");
  q = p;
  q.d_out = 0;
  CHECK(!emulate_fwht(q, nullptr), "d_out=0 accepted");
  q = p;
  q.d_in = 5;
  CHECK(!emulate_fwht(q, nullptr), "d_in > n accepted");
  q = p;
  q.n = int64_t(1) << (max_log_n(DType::kFloat32, q.max_smem_bytes) + 1);
  q.d_in = 4;
  q.d_out = 4;
  CHECK(!emulate_fwht(q, nullptr), "n beyond max_log_n accepted");
  std::printf("refusals: checked; max_log_n fp32/fp16/fp64 on 227 KB: %d/%d/%d, on 99 KB: %d/%d/%d\n",
              max_log_n(DType::kFloat32, 227 * 1024), max_log_n(DType::kFloat16, 227 * 1024),
              max_log_n(DType::kFloat64, 227 * 1024), max_log_n(DType::kFloat32, 99 * 1024),
              max_log_n(DType::kFloat16, 99 * 1024), max_log_n(DType::kFloat64, 99 * 1024));
}

}  // namespace

int main(int argc, char** argv) {
  const int cases = argc > 1 ? std::atoi(argv[1]) : 400;
  check_row_layout();
  check_col_layout();
  check_banks();
  check_refusals();
  const int mismatches = run_cases(cases);
  std::printf("fwht_cuda_emulate: %d failed checks, %d mismatches\n", failures, mismatches);
  return failures == 0 && mismatches == 0 ? 0 : 1;
}
