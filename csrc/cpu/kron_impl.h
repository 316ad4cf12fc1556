// Body of the CPU kernel of the Kronecker transform (interface and method: kron.h), written once
// with GCC/Clang vector extensions and compiled once per instruction set. Not a normal header:
// kron_<isa>.cpp defines the same macros as fwht_<isa>.cpp, includes fwht_impl.h (vector types,
// loaders, stores and the power-of-two stages used here) and then this file. No torch here.

namespace zerofwht {
namespace cpu {
namespace ZF_ISA_NS {
namespace {

// The next row's prefetch, issued in `steps` equal portions (step()), the last ones possibly empty.
struct NextRowFeed {
  NextRowPrefetch pf;
  int64_t reads = 0, writes = 0;  // lines per step
  NextRowFeed(const NextRowPrefetch& from, int64_t steps) : pf(from) {
    if (steps > 0) {
      reads = (pf.read_lines + steps - 1) / steps;
      writes = (pf.write_lines + steps - 1) / steps;
    }
  }
  ZF_INLINE void step() {
    const int64_t r = std::min(reads, pf.read_lines), w = std::min(writes, pf.write_lines);
    for (int64_t l = 0; l < r; ++l) __builtin_prefetch(pf.read + 64 * l, 0, 2);
    for (int64_t l = 0; l < w; ++l) __builtin_prefetch(pf.write + 64 * l, 1, 2);
    pf.read += 64 * r;
    pf.read_lines -= r;
    pf.write += 64 * w;
    pf.write_lines -= w;
  }
};

template <class T>
struct KronImpl {
  using S = Storage<T>;
  using C = typename S::C;
  using Kn = Kern<C>;
  using V = typename Kn::V;
  static constexpr int W = Kn::W;

  // The table of one group of GS sub-rows (sub-row k at src + k * M) for NC vectors of columns:
  // entry e = v_0 + sum_k (bit k-1 of e ? -v_k : +v_k), summed in sub-row order, at tab[e * NC + nc].
  template <class VL, int NC, int GS>
  static ZF_INLINE void build(const C* src, int64_t M, VL* tab) {
    constexpr int L = int(sizeof(VL) / sizeof(C));
    constexpr int E = 1 << (GS - 1);
#pragma GCC unroll 4
    for (int nc = 0; nc < NC; ++nc) {
      VL e[E];
      e[0] = loadu<VL>(src + nc * L);
#pragma GCC unroll 8
      for (int k = 1; k < GS; ++k) {
        const VL v = loadu<VL>(src + k * M + nc * L);
        const int h = 1 << (k - 1);
#pragma GCC unroll 32
        for (int q = 0; q < h; ++q) {
          e[q + h] = e[q] - v;
          e[q] = e[q] + v;
        }
      }
#pragma GCC unroll 32
      for (int q = 0; q < E; ++q) tab[q * NC + nc] = e[q];
    }
  }

  template <class VL, int NC>
  static ZF_INLINE void build_all(const KronPlan& pl, int64_t K, int64_t M, const C* col, VL* tab) {
    for (int q = 0; q < pl.groups; ++q) {
      const int64_t i0 = int64_t(q) * pl.g;
      const C* src = col + i0 * M;
      VL* t = tab + size_t(q) * pl.entries * NC;
      switch (std::min<int64_t>(pl.g, K - i0)) {
        case 1: build<VL, NC, 1>(src, M, t); break;
        case 2: build<VL, NC, 2>(src, M, t); break;
        case 3: build<VL, NC, 3>(src, M, t); break;
        case 4: build<VL, NC, 4>(src, M, t); break;
        case 5: build<VL, NC, 5>(src, M, t); break;
        default: build<VL, NC, 6>(src, M, t); break;
      }
    }
  }

  // Output row r, NC vectors: (first positive + other positives) - (first negative + others).
  template <class VL, int NC, class Put>
  static ZF_INLINE void combine(const KronPlan& pl, int64_t rows_out, const VL* tab, const Put& put) {
    const int32_t* terms = pl.terms.data();
    const int32_t* counts = pl.counts.data();
    for (int64_t r = 0; r < rows_out; ++r) {
      const int32_t* t = terms + r * pl.stride;
      const int cp = counts[2 * r], cn = counts[2 * r + 1];
      VL ap[NC], an[NC];
#pragma GCC unroll 4
      for (int nc = 0; nc < NC; ++nc) {
        ap[nc] = tab[t[0] * NC + nc];
        an[nc] = tab[t[1] * NC + nc];
      }
      const int32_t* tp = t + 2;
      for (int j = 0; j < cp; ++j)
#pragma GCC unroll 4
        for (int nc = 0; nc < NC; ++nc) ap[nc] += tab[tp[j] * NC + nc];
      tp += cp;
      for (int j = 0; j < cn; ++j)
#pragma GCC unroll 4
        for (int nc = 0; nc < NC; ++nc) an[nc] += tab[tp[j] * NC + nc];
#pragma GCC unroll 4
      for (int nc = 0; nc < NC; ++nc) put(r, nc, ap[nc] - an[nc]);
    }
  }

  // The table entries each output row adds, as pointers into the table of NC-vector entries
  // (plan order: first positive, first negative, other positives, other negatives); made once per
  // call and thread, so that the combine loop reads an address per term instead of an index to
  // widen, scale and add.
  template <int NC>
  static void term_pointers(const KronPlan& pl, int64_t rows_out, const V* tab, const V** ptr) {
    for (int64_t r = 0; r < rows_out; ++r) {
      const int32_t* t = pl.terms.data() + r * pl.stride;
      const int n_terms = 2 + pl.counts[2 * r] + pl.counts[2 * r + 1];
      for (int j = 0; j < n_terms; ++j) ptr[r * pl.stride + j] = tab + size_t(t[j]) * NC;
    }
  }

  // The K x K stage of one row over columns [0, M) of work (K x M), NC vectors of W at a time.
  // Output row r, NC vectors: (first positive + other positives) - (first negative + others),
  // added in this order (the order fixes the rounding), times the scale, stored at column c.
  // Sub-row i of work starts at work + i * ws (ws >= M: see run_rows).
  template <int NC, bool kFeed>
  static void kstage_vec(const KronParams& p, const KronPlan& pl, const C* work, int64_t ws, V* tab,
                         const V* const* ptr, T* yr, C scale, bool scaled) {
    const int64_t M = p.M, d_out = p.d_out, rows_out = (d_out + M - 1) / M;
    const int32_t* counts = pl.counts.data();
    const int stride = pl.stride;
    const bool stream = pl.stream;
    // The next block's columns of every sub-row are fetched while this block is combined: K
    // strided streams are more than the hardware prefetchers follow, and a work matrix beyond L1
    // is read from L2.
    // The next row: the power-of-two passes issue its prefetch per radix chunk, and a short
    // sub-row has few of those (none when one leaf pass does it all), so whatever they left is
    // spread over this stage's output rows (kron.h: KronPlan::prefetch_next_row).
    NextRowFeed feed(t_prefetch, kFeed ? (M + NC * W - 1) / (NC * W) * rows_out : 0);
    for (int64_t c = 0; c < M; c += NC * W) {
      if (c + NC * W < M)
        for (int64_t i = 0; i < p.K; ++i)
          for (int64_t l = 0; l < NC * W; l += 64 / int64_t(sizeof(C)))
            __builtin_prefetch(work + i * ws + c + NC * W + l, 0, 3);
      build_all<V, NC>(pl, p.K, ws, work + c, tab);
      // Output rows whose NC * W columns from c are all below d_out: no bounds checks (the
      // pointers and counts stay in registers; the checked rows, at most one, come after).
      const int64_t full_rows = std::min(rows_out, (d_out - c - NC * W) >= 0 ? (d_out - c - NC * W) / M + 1 : 0);
      T* yo = yr + c;
      const V* const* pr = ptr;
      const int32_t* cnt = counts;
      for (int64_t r = 0; r < full_rows; ++r, yo += M, pr += stride, cnt += 2) {
        if constexpr (kFeed) feed.step();  // (kFeed false: no feed state in the loop's registers)
        V ap[NC], an[NC];
        const V* const* tp = pr + 2;
        const V* p0 = pr[0];
        const V* n0 = pr[1];
#pragma GCC unroll 8
        for (int nc = 0; nc < NC; ++nc) {
          ap[nc] = p0[nc];
          an[nc] = n0[nc];
        }
        const int cp = cnt[0], cn = cnt[1];
        for (int j = 0; j < cp; ++j) {
          const V* e = tp[j];
#pragma GCC unroll 8
          for (int nc = 0; nc < NC; ++nc) ap[nc] += e[nc];
        }
        tp += cp;
        for (int j = 0; j < cn; ++j) {
          const V* e = tp[j];
#pragma GCC unroll 8
          for (int nc = 0; nc < NC; ++nc) an[nc] += e[nc];
        }
#pragma GCC unroll 8
        for (int nc = 0; nc < NC; ++nc) {
          V v = ap[nc] - an[nc];
          if (scaled) v = v * scale;  // as RowStore: one multiply, one rounding
          if (stream) S::stream(yo + nc * W, v);
          else S::store(yo + nc * W, v);
        }
      }
      for (int64_t r = full_rows; r < rows_out; ++r) {
        const V* const* pr2 = ptr + r * stride;
        const int32_t* cnt2 = counts + 2 * r;
        V ap[NC], an[NC];
        for (int nc = 0; nc < NC; ++nc) {
          ap[nc] = pr2[0][nc];
          an[nc] = pr2[1][nc];
        }
        const V* const* tp = pr2 + 2;
        for (int j = 0; j < cnt2[0]; ++j)
          for (int nc = 0; nc < NC; ++nc) ap[nc] += tp[j][nc];
        tp += cnt2[0];
        for (int j = 0; j < cnt2[1]; ++j)
          for (int nc = 0; nc < NC; ++nc) an[nc] += tp[j][nc];
        const RowStore<T> st{yr + r * M, std::min(M, d_out - r * M), scale, scaled, stream};
        for (int nc = 0; nc < NC; ++nc) st.template put<true>(c + nc * W, ap[nc] - an[nc]);
      }
    }
    if constexpr (kFeed) t_prefetch = feed.pf;
  }
  template <int NC>
  static void kstage(const KronParams& p, const KronPlan& pl, const C* work, int64_t ws, V* tab,
                     const V* const* ptr, T* yr, C scale, bool scaled) {
    if (pl.prefetch_next_row) kstage_vec<NC, true>(p, pl, work, ws, tab, ptr, yr, scale, scaled);
    else kstage_vec<NC, false>(p, pl, work, ws, tab, ptr, yr, scale, scaled);
  }

  // Transposes W vectors of W lanes in place (a[i][k] <-> a[k][i]): log2(W) stages, each swapping
  // the off-diagonal H x H blocks of every 2H x 2H block with two-vector shuffles.
  template <int H, size_t... I>
  static ZF_INLINE V swap_lo(V lo, V hi, std::index_sequence<I...>) {
    return __builtin_shufflevector(lo, hi, ((I & H) ? int(W + I - H) : int(I))...);
  }
  template <int H, size_t... I>
  static ZF_INLINE V swap_hi(V lo, V hi, std::index_sequence<I...>) {
    return __builtin_shufflevector(lo, hi, ((I & H) ? int(W + I) : int(I + H))...);
  }
  template <int H = 1>
  static ZF_INLINE void transpose(V* a) {
    if constexpr (H < W) {
      using Seq = std::make_index_sequence<W>;
#pragma GCC unroll 16
      for (int i = 0; i < W; ++i) {
        if (!(i & H)) {
          const V lo = a[i], hi = a[i + H];
          a[i] = swap_lo<H>(lo, hi, Seq{});
          a[i + H] = swap_hi<H>(lo, hi, Seq{});
        }
      }
      transpose<2 * H>(a);
    }
  }

  // Sub-rows shorter than a vector (M < W): W rows at a time, transposed (W x W blocks in
  // registers) into a work array whose vector j holds element j of the W rows (lane l: row r + l),
  // so that every butterfly and the K x K stage are whole-vector operations, then transposed back.
  // The same additions in the same order as for wide sub-rows, lane by lane (bitwise identical).
  static void run_rows_narrow(const KronParams& p, const KronPlan& pl, int64_t r0, int64_t r1) {
    const int64_t K = p.K, M = p.M, n = p.n, d_in = p.d_in, d_out = p.d_out;
    const int64_t rows_out = (d_out + M - 1) / M, nw = (n + W - 1) / W * W;
    V* work = static_cast<V*>(thread_scratch(0, sizeof(V) * size_t(nw)));
    V* tab = static_cast<V*>(thread_scratch(1, sizeof(V) * size_t(pl.zero_entry + 1)));
    tab[pl.zero_entry] = V{};
    const T* x = static_cast<const T*>(p.x);
    T* y = static_cast<T*>(p.y);
    const C scale = C(p.scale);
    const bool scaled = scale != C(1);
    for (int64_t r = r0; r < r1; r += W) {
      const int64_t rows = std::min<int64_t>(W, r1 - r);
      for (int64_t j = 0; j < nw; j += W) {  // in: rows x [j, j + W) -> vectors j .. j + W - 1
        V a[W];
#pragma GCC unroll 16
        for (int l = 0; l < W; ++l) {
          a[l] = V{};
          if (l < rows && j < d_in) {
            const RowLoad<T> ld{x + (r + l) * p.x_row_stride, d_in};
            a[l] = j + W <= d_in ? ld.template get<false>(j) : ld.template get<true>(j);
          }
        }
        transpose(a);
#pragma GCC unroll 16
        for (int q = 0; q < W; ++q) work[j + q] = a[q];
      }
      // The power-of-two stages of every sub-row (M <= W / 2: at most log2(W) - 1 of them), as a
      // plain loop: Kn::stages over the n * W lanes (distances W .. (M/2) W) gives the same bits
      // but measured 0.40 -> 0.70 ns per element at fp32 12*8 (docs/kron.md).
      for (int64_t h = 1; h < M; h *= 2)
        for (int64_t j = 0; j < n; ++j)
          if (!(j & h)) {
            const V lo = work[j], hi = work[j + h];
            work[j] = lo + hi;
            work[j + h] = lo - hi;
          }
      C* lanes = reinterpret_cast<C*>(work);
      for (int64_t c = 0; c < M; ++c) {  // the K x K stage of column c, written over it
        build_all<V, 1>(pl, K, M * W, lanes + c * W, tab);
        combine<V, 1>(pl, rows_out, tab, [&](int64_t o, int, V v) ZF_INLINE_LAMBDA { work[o * M + c] = v; });
      }
      for (int64_t j = 0; j < d_out; j += W) {  // out: vectors j .. j + W - 1 -> rows x [j, j + W)
        V a[W];
#pragma GCC unroll 16
        for (int q = 0; q < W; ++q) a[q] = work[j + q];
        transpose(a);
        for (int64_t l = 0; l < rows; ++l) {
          const RowStore<T> st{y + (r + l) * p.y_row_stride, d_out, scale, scaled, false};
          if (j + W <= d_out) st.template put<false>(j, a[l]);
          else st.template put<true>(j, a[l]);
        }
      }
    }
  }

  static void run_rows(const KronParams& p, const KronPlan& pl, int64_t r0, int64_t r1) {
    if (p.M < W) return run_rows_narrow(p, pl, r0, r1);
    const CpuTuning& tune = cpu_tuning();
    const int64_t K = p.K, M = p.M;
    FwhtPlan fp{};  // what Impl<T>::row_stages reads: the L1 piece and the leaf radix
    fp.piece = pow2_floor(tune.l1d_bytes * 2 / 3) / int64_t(sizeof(C));
    fp.leaf_radix_log2 = tune.amd ? std::min(ZF_RADIX_LOG2, 3) : ZF_RADIX_LOG2;
    // Vectors of columns per table: as many as keep the table in half of L1 (no effect on bits).
    const int64_t table_vectors = int64_t(pl.groups) * pl.entries + 1;
    int nc = 1;
    while (nc < 8 && int64_t(2 * nc) * W <= M &&
           table_vectors * 2 * nc * int64_t(sizeof(V)) <= tune.l1d_bytes / 2)
      nc *= 2;
    // Work sub-rows of 2 KB or more are a line apart more than their length: at a power-of-two
    // stride of 4 KB or more, the K x K stage's K loads of one column all fall into the same L1
    // set (and at 2 KB into two), which costs more than the power-of-two stages then pay for
    // running one sub-row per call. Measured in docs/kron.md.
    const int64_t ws = M * int64_t(sizeof(C)) >= kPaddedWorkBytes ? M + 64 / int64_t(sizeof(C)) : M;
    C* work = static_cast<C*>(thread_scratch(0, sizeof(C) * size_t(K * ws + W)));
    const int64_t rows_out = (p.d_out + M - 1) / M;
    // The table, then (vector kernels) the pointers of term_pointers: one scratch of this thread.
    const size_t tab_bytes = sizeof(V) * size_t(table_vectors * nc);
    void* tab = thread_scratch(1, tab_bytes + sizeof(V*) * size_t(rows_out * pl.stride));
    for (int k = 0; k < nc; ++k) static_cast<V*>(tab)[pl.zero_entry * nc + k] = V{};
    const V** ptr = reinterpret_cast<const V**>(static_cast<char*>(tab) + tab_bytes);
    switch (nc) {
      case 8: term_pointers<8>(pl, rows_out, static_cast<V*>(tab), ptr); break;
      case 4: term_pointers<4>(pl, rows_out, static_cast<V*>(tab), ptr); break;
      case 2: term_pointers<2>(pl, rows_out, static_cast<V*>(tab), ptr); break;
      default: term_pointers<1>(pl, rows_out, static_cast<V*>(tab), ptr); break;
    }
    const T* x = static_cast<const T*>(p.x);
    T* y = static_cast<T*>(p.y);
    const C scale = C(p.scale);
    const bool scaled = scale != C(1);
    // Sub-rows per power-of-two call: as many whole sub-rows as fill an L1 piece (all their
    // passes then run in L1); sub-rows of two pieces or more go piece by piece (row_stages).
    const int64_t per = ws != M ? 1 : std::max<int64_t>(1, fp.piece / M);  // padded: one at a time
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + r * p.x_row_stride;
      T* yr = y + r * p.y_row_stride;
      t_prefetch = NextRowPrefetch{};
      if (r + 1 < r1) {  // fetch the next row while this one's later passes run
        t_prefetch.read = reinterpret_cast<const char*>(xr + p.x_row_stride);
        t_prefetch.read_lines = lines_of<T>(p.d_in);
        t_prefetch.write = reinterpret_cast<char*>(yr + p.y_row_stride);
        t_prefetch.write_lines = pl.stream ? 0 : lines_of<T>(p.d_out);
      }
      if (M >= 2 * fp.piece) {
        for (int64_t i = 0; i < K; ++i) {
          const int64_t valid = std::clamp<int64_t>(p.d_in - i * M, 0, M);
          if (valid == 0) {  // H * 0 = 0: a sub-row entirely in the padding
            std::memset(static_cast<void*>(work + i * ws), 0, sizeof(C) * size_t(M));
            continue;
          }
          Impl<T>::row_stages(fp, M, xr + i * M, valid, typename Kn::WorkIO{work + i * ws}, work + i * ws);
        }
      } else {
        for (int64_t i = 0; i < K; i += per) {
          const int64_t len = std::min(per, K - i) * M;
          const int64_t valid = std::clamp<int64_t>(p.d_in - i * M, 0, len);
          if (valid == 0) {
            std::memset(static_cast<void*>(work + i * ws), 0, sizeof(C) * size_t(len));
            continue;
          }
          Kn::stages(len, 1, M, RowLoad<T>{xr + i * M, valid},
                     typename Kn::WorkIO{work + i * ws}, work + i * ws, fp.leaf_radix_log2);
        }
      }
      switch (nc) {
        case 8: kstage<8>(p, pl, work, ws, static_cast<V*>(tab), ptr, yr, scale, scaled); break;
        case 4: kstage<4>(p, pl, work, ws, static_cast<V*>(tab), ptr, yr, scale, scaled); break;
        case 2: kstage<2>(p, pl, work, ws, static_cast<V*>(tab), ptr, yr, scale, scaled); break;
        default: kstage<1>(p, pl, work, ws, static_cast<V*>(tab), ptr, yr, scale, scaled); break;
      }
    }
    t_prefetch = NextRowPrefetch{};
#ifdef ZF_SFENCE
    if (pl.stream) ZF_SFENCE();  // non-temporal stores are weakly ordered: publish them
#endif
  }
};

void kron_run_rows(const KronParams& p, const KronPlan& plan, int64_t r0, int64_t r1) {
  switch (p.dtype) {
    case DType::kFloat32: KronImpl<float>::run_rows(p, plan, r0, r1); break;
    case DType::kFloat64: KronImpl<double>::run_rows(p, plan, r0, r1); break;
    case DType::kFloat16: KronImpl<F16>::run_rows(p, plan, r0, r1); break;
    case DType::kBFloat16: KronImpl<BF16>::run_rows(p, plan, r0, r1); break;
  }
}

}  // namespace

const KronTable kKronTable = {ZF_ISA_NAME, &kron_run_rows};

}  // namespace ZF_ISA_NS
}  // namespace cpu
}  // namespace zerofwht
