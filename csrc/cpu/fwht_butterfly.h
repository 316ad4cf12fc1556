// The butterflies of the CPU kernels: the in-register stages (lane shuffles within a vector, then
// across the R = 2^ZF_RADIX_LOG2 vectors of a chunk) and the radix passes over a row in memory
// (Kern<C>), stages always in increasing distance; plus the prefetch of the next row that the
// radix passes issue while memory would otherwise sit idle.
// A fragment of fwht_impl.h, included inside its per-ISA namespace (once per instruction set);
// not a header of its own.
#ifndef ZF_ISA_NS
#error "a fragment of cpu/fwht_impl.h: include that file, not this one"
#endif

// ---- prefetching the next row while this one computes ---------------------------------------
// The passes after the leaf work in L1/L2 and leave memory idle; meanwhile the next row's input
// lines are fetched and its output lines claimed for writing (prefetchw: no read-for-ownership
// stall later), one input and one output line per two vectors each radix chunk loads. Measured on
// an AMD EPYC (Zen 4), one thread, fp32, 2^22 elements per call, n = 2^12 ... 2^15: 0.378-0.48
// -> 0.359-0.437 ns per element with two lines per chunk; with one per two vectors (which covers
// a whole next row of 2^12 during the current row's two radix passes) 2^12 0.33 -> 0.27-0.28,
// 2^13 0.36 -> 0.34, other sizes unchanged within the noise.
// Per thread: set by the row loops (run_rows, run_blocks), consumed by radix_pass.
struct NextRowPrefetch {
  const char* read = nullptr;  // next line of the next input to fetch
  int64_t read_lines = 0;      // lines of it still to fetch
  char* write = nullptr;       // next line of the next output to claim
  int64_t write_lines = 0;     // lines of it still to claim (0 when the output streams)
};
inline thread_local NextRowPrefetch t_prefetch;
template <int Rv>
constexpr int kPrefetchLinesPerChunk = Rv >= 4 ? Rv / 2 : 1;

// ---- register-level butterflies ------------------------------------------------------------
template <class C> struct Lanes;
template <> struct Lanes<float> { using V = vf; static constexpr int W = ZF_VEC_BYTES / 4; };
template <> struct Lanes<double> { using V = vd; static constexpr int W = ZF_VEC_BYTES / 8; };

template <class C>
struct Kern {
  using V = typename Lanes<C>::V;
  static constexpr int W = Lanes<C>::W;
  static constexpr int LW = __builtin_ctz(W);
  static constexpr int LR = ZF_RADIX_LOG2;
  static constexpr int kWideCap = 3;

  template <int D, size_t... I>
  static ZF_INLINE V partner(V v, std::index_sequence<I...>) {  // lane i <- lane i ^ D
    return __builtin_shufflevector(v, v, static_cast<int>(I ^ D)...);
  }
  template <int D, size_t... I>
  static ZF_INLINE V signs(std::index_sequence<I...>) {  // +1 on lower lanes, -1 on upper lanes
    return V{((I & D) ? C(-1) : C(1))...};
  }
  // One in-register stage of distance D: lower lane lo + hi, upper lane lo - hi. Written as
  // partner + v * (+-1); v * (+-1) is exact, so the compiler may fuse it into one FMA (it does
  // with -ffp-contract=fast, the GCC default) without changing a single bit of the result.
  template <int D>
  static ZF_INLINE V lane_stage(V v) {
    using Seq = std::make_index_sequence<W>;
    return partner<D>(v, Seq{}) + v * signs<D>(Seq{});
  }
  template <int D = 1>
  static ZF_INLINE V lane_stages(V v) {  // all stages of distance < W
    if constexpr (D < W) return lane_stages<2 * D>(lane_stage<D>(v));
    else return v;
  }
  template <int D = 1>
  static ZF_INLINE V lane_stages_below(V v, int64_t n) {  // stages of distance < n (< W)
    if constexpr (D < W) {
      if (D >= n) return v;
      return lane_stages_below<2 * D>(lane_stage<D>(v), n);
    } else {
      return v;
    }
  }
  template <int Rv, int H = 1>
  static ZF_INLINE void across(V* a) {  // stages across Rv registers (distance H .. Rv/2 registers)
    if constexpr (H < Rv) {
#pragma GCC unroll 32
      for (int i = 0; i < Rv; ++i) {
        if (!(i & H)) {
          V lo = a[i], hi = a[i + H];
          a[i] = lo + hi;
          a[i + H] = lo - hi;
        }
      }
      across<Rv, 2 * H>(a);
    }
  }

  // ---- passes over a logical row ------------------------------------------------------------
  // A loader has get<kCheck>(i) (lanes [i, i+W)) and full(lo, hi) (true when every position in
  // [lo, hi) is inside the data, so get<false> may skip the bounds checks); a storer has
  // put<kCheck>(i, v) and full(lo, hi) likewise. Each chunk is checked once, not each vector.
  template <int Rv, bool kCheck, class Ld, class St>
  static ZF_INLINE void leaf_chunk(int64_t base, int64_t lane_limit, const Ld& ld, const St& st) {
    V a[Rv];
    if (lane_limit >= W) {
#pragma GCC unroll 16
      for (int k = 0; k < Rv; ++k) a[k] = lane_stages(ld.template get<kCheck>(base + k * W));
    } else {  // rows shorter than a vector, packed side by side: only distances < lane_limit
#pragma GCC unroll 16
      for (int k = 0; k < Rv; ++k)
        a[k] = lane_stages_below(ld.template get<kCheck>(base + k * W), lane_limit);
    }
    across<Rv>(a);
#pragma GCC unroll 16
    for (int k = 0; k < Rv; ++k) st.template put<kCheck>(base + k * W, a[k]);
  }
  template <int Rv, class Ld, class St>
  static void leaf_pass(int64_t len, int64_t lane_limit, const Ld& ld_ref, const St& st_ref) {
    const Ld ld = ld_ref;  // local copies: their fields cannot alias the data being written
    const St st = st_ref;
    for (int64_t base = 0; base < len; base += Rv * W) {
      const int64_t end = base + Rv * W;
      if (ld.full(base, end) && st.full(base, end)) leaf_chunk<Rv, false>(base, lane_limit, ld, st);
      else leaf_chunk<Rv, true>(base, lane_limit, ld, st);
    }
  }
  template <int Rv, bool kCheck, class Ld, class St>
  static ZF_INLINE void radix_chunk(int64_t j, int64_t h, const Ld& ld, const St& st) {
    V a[Rv];
#pragma GCC unroll 16
    for (int k = 0; k < Rv; ++k) a[k] = ld.template get<kCheck>(j + k * h);
    across<Rv>(a);
#pragma GCC unroll 16
    for (int k = 0; k < Rv; ++k) st.template put<kCheck>(j + k * h, a[k]);
  }
  template <int Rv, class Ld, class St>
  static void radix_pass(int64_t len, int64_t h, const Ld& ld_ref, const St& st_ref) {
    const Ld ld = ld_ref;
    const St st = st_ref;
    NextRowPrefetch pf = t_prefetch;
    auto prefetch = [&pf]() ZF_INLINE_LAMBDA {
      for (int i = 0; i < kPrefetchLinesPerChunk<Rv>; ++i) {
        if (pf.read_lines > 0) {
          __builtin_prefetch(pf.read, 0, 2);
          --pf.read_lines;
          if (pf.read_lines > 0) pf.read += 64;
        }
        if (pf.write_lines > 0) {
          __builtin_prefetch(pf.write, 1, 2);
          --pf.write_lines;
          if (pf.write_lines > 0) pf.write += 64;
        }
      }
    };
    for (int64_t base = 0; base < len; base += h * Rv) {
      const int64_t end = base + h * Rv;
      if (ld.full(base, end) && st.full(base, end)) {
        for (int64_t j = base; j < base + h; j += W) {
          prefetch();
          radix_chunk<Rv, false>(j, h, ld, st);
        }
      } else {
        // Part of this group is padding or truncated (a row with d_out < n): decide per chunk, so
        // that only the chunks that reach past the end pay for the checks, and keep prefetching.
        // (Checking the whole group cost the last pass of every truncated row its next-row
        // prefetch and ran it fully checked: 2x slower at n = 2^10 with d_out = n - 16.)
        for (int64_t j = base; j < base + h; j += W) {
          prefetch();
          const int64_t chunk_end = j + (Rv - 1) * h + W;
          if (ld.full(j, chunk_end) && st.full(j, chunk_end)) radix_chunk<Rv, false>(j, h, ld, st);
          else radix_chunk<Rv, true>(j, h, ld, st);
        }
      }
    }
    t_prefetch = pf;
  }
  template <class Ld, class St>
  static void leaf_pass_r(int lr, int64_t len, int64_t lane_limit, const Ld& ld, const St& st) {
    switch (lr) {
      case 0: return leaf_pass<1>(len, lane_limit, ld, st);
      case 1: return leaf_pass<2>(len, lane_limit, ld, st);
      case 2: return leaf_pass<4>(len, lane_limit, ld, st);
      case 3: return leaf_pass<8>(len, lane_limit, ld, st);
#if ZF_RADIX_LOG2 >= 4
      case 4: return leaf_pass<16>(len, lane_limit, ld, st);
#endif
    }
  }
  template <class Ld, class St>
  static void radix_pass_r(int lr, int64_t len, int64_t h, const Ld& ld, const St& st) {
    switch (lr) {
      case 1: return radix_pass<2>(len, h, ld, st);
      case 2: return radix_pass<4>(len, h, ld, st);
      case 3: return radix_pass<8>(len, h, ld, st);
#if ZF_RADIX_LOG2 >= 4
      case 4: return radix_pass<16>(len, h, ld, st);
#endif
    }
  }

  // A work buffer in the compute type, addressed like the logical row.
  struct WorkIO {
    C* w;
    template <bool kCheck> ZF_INLINE V get(int64_t i) const { return loadu<V>(w + i); }
    template <bool kCheck> ZF_INLINE void put(int64_t i, V v) const { storeu(w + i, v); }
    bool full(int64_t, int64_t) const { return true; }
  };

  // Applies the stages of distance h0, 2*h0, ..., h_end/2 to `len` elements (powers of two,
  // h0 == 1 or h0 >= W, h_end <= len; with h_end < len, that is len/h_end independent rows of
  // h_end elements laid side by side), reading with `ld`, writing the result with `st`.
  // Intermediate passes go through `work` (len elements; may be st's own memory).
  // The leaf pass keeps at most 2^leaf_max vectors (leaf_max <= LR).
  template <class Ld, class St>
  static void stages(int64_t len, int64_t h0, int64_t h_end, const Ld& ld, const St& st, C* work,
                     int leaf_max = LR) {
    const int lg_end = __builtin_ctzll(h_end);
    int done = __builtin_ctzll(h0);
    int leaf_lr = -1;
    if (done == 0) {  // the leaf pass takes the in-register stages and up to leaf_max more
      // The leaf keeps to leaf_max even when one pass of LR could take the whole row (the plan
      // raises leaf_max where that pays). With plain stores to lines that miss, one pass of 16
      // vectors bursts 16 loads and 16 stores, which was slower on Zen 4: two threads, 2^22
      // elements per call, n = 2^8, peer_bench, eight alternating rounds: 0.201 -> 0.143 ns per
      // element; benchmarks/probes/burst_width.c: bursts of 16 lines 20-25 % slower than bursts of
      // 8, up to 2.3x.
      leaf_max = std::min(leaf_max, LR);
      leaf_lr = lg_end <= LW ? 0 : (lg_end - LW < leaf_max ? lg_end - LW : leaf_max);
      done = lg_end <= LW ? lg_end : LW + leaf_lr;
    }
    const int rest = lg_end - done;
    // Strides of 4 KB or more put every one of a pass's 2^lr streams in the same L1 set (12 ways
    // here): such passes take at most 3 bits.
    const int cap = (int64_t(1) << done) * int64_t(sizeof(C)) >= 4096 ? std::min(LR, kWideCap) : LR;
    const int radix_passes = (rest + cap - 1) / cap;
    const int passes = radix_passes + (leaf_lr >= 0 ? 1 : 0);
    WorkIO wk{work};
    int pass = 0;
    auto run = [&](const auto& src, const auto& dst, int lr, int64_t h) {
      if (h == 0) leaf_pass_r(lr, len, h_end, src, dst);
      else radix_pass_r(lr, len, h, src, dst);
    };
    // the first pass reads ld, the last writes st, the others use the work buffer
    auto step = [&](int lr, int64_t h) {
      const bool first = pass == 0, last = pass == passes - 1;
      if (first && last) run(ld, st, lr, h);
      else if (first) run(ld, wk, lr, h);
      else if (last) run(wk, st, lr, h);
      else run(wk, wk, lr, h);
      ++pass;
    };
    if (leaf_lr >= 0) step(leaf_lr, 0);
    int64_t h = int64_t(1) << done;
    for (int k = 0; k < radix_passes; ++k) {
      // spread the remaining stages evenly over the passes (fewer live registers than R)
      const int lr = rest / radix_passes + (k < rest % radix_passes ? 1 : 0);
      step(lr, h);
      h <<= lr;
    }
  }
};
