// The driver of the CPU kernels: Impl<T> runs the passes over rows, blocks and column groups as a
// FwhtPlan cuts them (one sweep for rows that fit L2, two sweeps over blocks for longer ones,
// packed short rows, folded padded rows, a work row, overlapped rows on one thread), with the
// per-thread scratch buffers it needs.
// A fragment of fwht_impl.h, included inside its per-ISA namespace (once per instruction set);
// not a header of its own.
#ifndef ZF_ISA_NS
#error "a fragment of cpu/fwht_impl.h: include that file, not this one"
#endif

// Per-thread scratch that survives between calls (a fresh allocation of a large buffer would be
// page-faulted in again every time). Slot 0: rows and blocks; slot 1: column groups.
inline void* thread_scratch(int slot, size_t bytes) {
  struct Buffer {
    void* p = nullptr;
    size_t size = 0;
    ~Buffer() {
      if (p) ::operator delete(p, std::align_val_t(64));
    }
  };
  thread_local Buffer buffers[2];
  Buffer& b = buffers[slot];
  if (b.size < bytes) {
    if (b.p) ::operator delete(b.p, std::align_val_t(64));
    b.p = ::operator new(bytes, std::align_val_t(64));
    b.size = bytes;
  }
  return b.p;
}

template <class C>
struct AlignedBuffer {  // scratch in the compute type; 64-byte aligned
  C* p = nullptr;
  explicit AlignedBuffer(int64_t n) {
    if (n > 0) p = static_cast<C*>(::operator new(sizeof(C) * size_t(n), std::align_val_t(64)));
  }
  ~AlignedBuffer() {
    if (p) ::operator delete(p, std::align_val_t(64));
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
};

template <class T>
struct Impl {
  using S = Storage<T>;
  using C = typename S::C;
  using K = Kern<C>;
  static constexpr bool kSameType = std::is_same<T, C>::value;

  // The row can be transformed inside y itself when y stores the compute type and every one of
  // its n positions is an output.
  static bool direct(const FwhtParams& p) { return kSameType && p.d_out == p.n; }

  // Rows that are whole (d_in == d_out == n) and packed back to back in x and y can be treated as
  // one long array: the stages of distance < n never cross a row boundary. Short rows are done
  // that way, a chunk of rows per call, so that per-row overhead disappears.
  static bool packed(const FwhtParams& p) {
    auto dense = [&](const RowLayout& l) {
      return l.ndim == 0 || (l.ndim == 1 && l.strides[0] == p.n);
    };
    return p.d_in == p.n && p.d_out == p.n && p.lg_copies == 0 && dense(p.x_layout) && dense(p.y_layout);
  }
  // Packed calls take plan.pack_elems elements at a time (x and y chunks stay in L1). Longer rows
  // have little per-row overhead. 512 is packed too: its two passes (the leaf, then one stage)
  // stay in L1 either way, but one row at a time cost 0.35-0.41 instead of 0.31-0.35 ns per
  // element (Xeon, one thread, 2^22 elements per call).
  static constexpr int64_t kPackMaxN = 512;
  // Rows one stride apart in x and in y (one batch dimension after merging, or a single row).
  static bool evenly_strided(const FwhtParams& p) { return p.x_layout.ndim <= 1 && p.y_layout.ndim <= 1; }

  static C* scratch(int slot, int64_t elems) {
    return static_cast<C*>(thread_scratch(slot, sizeof(C) * size_t(std::max<int64_t>(elems, K::W))));
  }
  static void fence(bool streamed) {
#ifdef ZF_SFENCE
    if (streamed) ZF_SFENCE();  // non-temporal stores are weakly ordered: publish them
#endif
    (void)streamed;
  }

  // Rows (or chunks of short rows) that are not transformed inside y end with a pass from the
  // scratch into y. When that pass is a radix pass, it writes y as 2^lr streams h elements apart;
  // with plain stores every one of those lines is read for ownership, out of order, and that
  // measured twice as slow as writing y in address order. Such rows therefore finish their last
  // pass in the scratch (in L1) and copy it to y in address order (copy_out). Measured on Zen 4,
  // fp32, 2^22 row elements per call, 12 alternating rounds, ns per element, last pass into y ->
  // finished in the scratch:
  //   one thread, out_features = n - 16 (rows 64 bytes short, not streamed): 2^8 0.544 -> 0.362,
  //   2^9 0.647 -> 0.431, 2^10 0.729 -> 0.385, 2^11 0.806 -> 0.605; 2^12 0.512 -> 0.503;
  //   two threads, the same: 2^8 0.387 -> 0.275, 2^9 0.312 -> 0.185, 2^10 0.388 -> 0.245,
  //   2^11 0.419 -> 0.320; out= rows of a wider buffer, 2^8 / 2^9 0.434 / 0.435 -> 0.269 / 0.207.
  // Not when the output streams (non-temporal stores do not read the line: one thread, out= rows
  // of a wider buffer, 2^9 / 2^10 / 2^11 0.334 / 0.340 / 0.387 -> 0.453 / 0.436 / 0.487), not
  // when one pass does the whole row (it writes y in order already), and not for rows of a piece
  // or more (their last pass reads from L2, and the extra copy cost more: one thread 2^13 / 2^14
  // 0.535 -> 0.642, 0.562 -> 0.590 in a first set).
  static bool finish_in_scratch(const FwhtPlan& plan, int64_t n, int64_t len) {
    return !plan.stream && n > (int64_t(K::W) << plan.leaf_radix_log2) && len < plan.piece;
  }
  // Writes w's rows of n positions (len in all) through st in address order, the first `limit`
  // (d_out) positions of each: the rest would be dropped by st anyway, and visiting them cost 10 %
  // with 10 outputs of 256 (one thread, (16384, 200) -> 10).
  template <class St>
  static void copy_out(int64_t len, int64_t n, int64_t limit, const C* w, const St& st) {
    for (int64_t row = 0; row < len; row += n) {
      int64_t c = 0;
      for (; c + K::W <= limit; c += K::W) st.template put<false>(row + c, loadu<typename K::V>(w + row + c));
      if (c < limit) st.template put<true>(row + c, loadu<typename K::V>(w + row + c));
    }
  }
  // A folded row (fold_padding in fwht.h): w holds its transform of n elements; the row's
  // output is `copies` copies of it, n apart, the last one of all w - 0 and the others w + 0,
  // written by st (a RowStore of the row) up to st.limit. x + (-0) is x - 0, and the zero is a
  // run-time value, so the compiler cannot fold the addition away.
  static void write_copies(const C* w, int64_t n, int64_t copies, const RowStore<T>& st) {
    using V = typename K::V;
    for (int64_t k = 0; k < copies && k * n < st.limit; ++k) {
      const C zero = k + 1 == copies ? C(-0.0) : C(0.0);
      const int64_t end = std::min(n, st.limit - k * n);
      int64_t c = 0;
      for (; c + K::W <= end; c += K::W) st.template put<false>(k * n + c, loadu<V>(w + c) + zero);
      if (c < end) st.template put<true>(k * n + c, loadu<V>(w + c) + zero);
    }
  }
  static void run_rows(const FwhtParams& p, const FwhtPlan& plan, int64_t r0, int64_t r1) {
    const T* x = static_cast<const T*>(p.x);
    T* y = static_cast<T*>(p.y);
    const C scale = C(p.scale);
    const bool scaled = scale != C(1);
    // Intermediate passes run in y itself when it holds the compute type and all n positions,
    // unless the output streams past the caches; then in a per-thread scratch row.
    const bool in_y = kSameType && !plan.stream;
    if (p.n <= kPackMaxN && packed(p)) {
      const int64_t chunk_rows = std::max<int64_t>(1, plan.pack_elems / p.n);
      C* buf = in_y ? nullptr : scratch(0, chunk_rows * p.n);
      for (int64_t r = r0; r < r1; r += chunk_rows) {
        const int64_t len = std::min(chunk_rows, r1 - r) * p.n;
        T* yr = y + r * p.n;
        C* work = in_y ? reinterpret_cast<C*>(yr) : buf;
        K::stages(std::max<int64_t>(len, K::W), 1, p.n, RowLoad<T>{x + r * p.n, len},
                  RowStore<T>{yr, len, scale, scaled, plan.stream}, work, plan.leaf_radix_log2);
      }
      fence(plan.stream);
      return;
    }
    if (p.n <= kPackMaxN && p.n >= K::W && evenly_strided(p)) {
      // Padded, truncated or strided short rows, a chunk of rows at a time (RowsLoad), not one row
      // at a time (whose per-row cost dominates such short rows). Measured on Zen 4, one thread,
      // fp32, 2^22 row elements per call, twelve alternating rounds, ns per row element, one row
      // at a time -> chunks (these sizes take one pass, so this is the chunking alone): one thread
      // 2^6 out_features = n - 16 0.564 -> 0.316, d_in = n - 24 0.764 -> 0.441, 2^7 0.414 ->
      // 0.329 and 0.522 -> 0.369; two threads 2^6 0.435 -> 0.237 and 0.509 -> 0.272.
      const int64_t chunk_rows = std::max<int64_t>(1, plan.pack_elems / p.n);
      const int lg_n = __builtin_ctzll(p.n);
      const int64_t sx = p.x_layout.ndim == 0 ? 0 : p.x_layout.strides[0];
      const int64_t sy = p.y_layout.ndim == 0 ? 0 : p.y_layout.strides[0];
      // Intermediate passes run in y when its rows hold all n positions back to back.
      const bool chunk_in_y = in_y && p.d_out == p.n && p.lg_copies == 0 && (p.y_layout.ndim == 0 || sy == p.n);
      C* buf = chunk_in_y ? nullptr : scratch(0, chunk_rows * p.n);
      for (int64_t r = r0; r < r1; r += chunk_rows) {
        const int64_t len = std::min(chunk_rows, r1 - r) * p.n;
        T* yr = y + r * sy;
        C* work = chunk_in_y ? reinterpret_cast<C*>(yr) : buf;
        const RowsStore<T> st{yr, sy, p.d_out, lg_n, scale, scaled, plan.stream};
        if (p.lg_copies > 0) {
          K::stages(len, 1, p.n, RowsLoad<T>{x + r * sx, sx, p.d_in, lg_n}, typename K::WorkIO{buf}, buf,
                    plan.leaf_radix_log2);
          for (int64_t i = 0; i < len; i += p.n) write_copies(buf + i, p.n, int64_t(1) << p.lg_copies, st.row(i));
        } else if (!chunk_in_y && finish_in_scratch(plan, p.n, len)) {
          K::stages(len, 1, p.n, RowsLoad<T>{x + r * sx, sx, p.d_in, lg_n}, typename K::WorkIO{buf}, buf,
                    plan.leaf_radix_log2);
          copy_out(len, p.n, p.d_out, buf, st);
        } else {
          K::stages(len, 1, p.n, RowsLoad<T>{x + r * sx, sx, p.d_in, lg_n}, st, work, plan.leaf_radix_log2);
        }
      }
      fence(plan.stream);
      return;
    }
    const bool row_in_y = in_y && p.d_out == p.n && p.lg_copies == 0;
    C* buf = row_in_y ? nullptr : scratch(0, p.n);
    for (int64_t r = r0; r < r1; ++r) {
      const T* xr = x + row_offset(p.x_layout, r);
      T* yr = y + row_offset(p.y_layout, r);
      C* work = row_in_y ? reinterpret_cast<C*>(yr) : buf;
      if (r + 1 < r1) {  // fetch the next row while this one's later passes run
        t_prefetch.read = reinterpret_cast<const char*>(x + row_offset(p.x_layout, r + 1));
        t_prefetch.read_lines = lines_of<T>(p.d_in);
        t_prefetch.write = reinterpret_cast<char*>(y + row_offset(p.y_layout, r + 1));
        t_prefetch.write_lines = plan.stream ? 0 : lines_of<T>(p.d_out);
      }
      const RowStore<T> st{yr, p.d_out, scale, scaled, plan.stream};
      if (p.lg_copies > 0) {
        row_stages(plan, p.n, xr, p.d_in, typename K::WorkIO{buf}, buf);
        write_copies(buf, p.n, int64_t(1) << p.lg_copies, st);
      } else if (!row_in_y && finish_in_scratch(plan, p.n, p.n)) {
        row_stages(plan, p.n, xr, p.d_in, typename K::WorkIO{buf}, buf);
        copy_out(p.n, p.n, p.d_out, buf, st);
      } else {
        row_stages(plan, p.n, xr, p.d_in, st, work);
      }
    }
    t_prefetch = NextRowPrefetch{};
    fence(plan.stream);
  }

  // All stages of one row of `len` elements (valid of them read from x, zero beyond), stored by
  // st, intermediate passes in work (len elements). Rows beyond L1 are done in L1-sized pieces
  // first (all passes of a piece while it is in L1), then the stages across pieces (fewer
  // passes over L2). The stage order, hence every bit of the result, is that of one sweep.
  template <class St>
  static void row_stages(const FwhtPlan& plan, int64_t len, const T* x, int64_t valid, const St& st,
                         C* work) {
    const int64_t piece = piece_elems(plan, len);
    if (len < 2 * piece) {
      K::stages(std::max<int64_t>(len, K::W), 1, len, RowLoad<T>{x, valid}, st, work, plan.leaf_radix_log2);
      return;
    }
    for (int64_t b = 0; b < len; b += piece) {
      const int64_t v = std::min(std::max<int64_t>(valid - b, 0), piece);
      if (v == 0) {  // H * 0 = 0: a piece entirely in the padding
        std::memset(static_cast<void*>(work + b), 0, sizeof(C) * size_t(piece));
        continue;
      }
      K::stages(piece, 1, piece, RowLoad<T>{x + b, v}, RowStore<C>{work + b, piece, C(1), false, false},
                work + b, plan.leaf_radix_log2);
    }
    K::stages(len, piece, len, typename K::WorkIO{work}, st, work);
  }
  // L1-sized piece of a row (plan.piece, see make_plan_t). Rows of 512 KB take pieces twice that
  // size where pieces are 32 KB (L1d of 48 KB): three stages are then left across the 8 pieces, one
  // pass over L2 instead of two (2 + 2 stages across 16 pieces of 32 KB); the pieces' passes mostly
  // stay in L1 (measured on a Xeon, one thread, n = 2^17 fp32: 0.485-0.50 -> 0.46-0.47 ns per
  // element; 1 MB rows with 64 KB or 128 KB pieces were slower or no faster).
  static int64_t piece_elems(const FwhtPlan& plan, int64_t len) {
    const int64_t bytes = len * int64_t(sizeof(C)), piece_bytes = plan.piece * int64_t(sizeof(C));
    return bytes == (int64_t(512) << 10) && piece_bytes >= (int64_t(32) << 10) ? 2 * plan.piece : plan.piece;
  }

  static void run_blocks(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work_buf,
                         int64_t b0, int64_t b1) {
    C* work = work_row(p, plan, r, work_buf);
    for (int64_t b = b0; b < b1; ++b) {
      const bool more = b + 1 < b1;
      sweep1_block(p, plan, r, work, b, more ? r : -1, more ? work : nullptr, b + 1);
    }
    t_prefetch = NextRowPrefetch{};
    fence(plan.stream_blocks);
  }
  static C* work_row(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work_buf) {
    return plan.needs_work ? static_cast<C*>(work_buf)
                           : reinterpret_cast<C*>(static_cast<T*>(p.y) + row_offset(p.y_layout, r));
  }
  // The first sweep's block b of row r into work; while its later passes run, block nb of row nr
  // (into nwork) is fetched (nr < 0: nothing).
  // When the row is larger than the last-level cache can hold for the second sweep, a block's
  // passes run in a per-thread scratch and only its final pass writes (non-temporally) to the
  // work row. Rows that fit stay cached: the second sweep reads them right back.
  static void sweep1_block(const FwhtParams& p, const FwhtPlan& plan, int64_t r, C* work, int64_t b,
                           int64_t nr, C* nwork, int64_t nb) {
    const int64_t B = plan.block;
    const bool stream = plan.stream_blocks;
    const T* xr = static_cast<const T*>(p.x) + row_offset(p.x_layout, r);
    C* wb = work + b * B;
    const int64_t valid = std::min(std::max<int64_t>(p.d_in - b * B, 0), B);
    if (valid == 0) {  // H * 0 = 0: a block entirely in the padding
      std::memset(static_cast<void*>(wb), 0, sizeof(C) * size_t(B));
      return;
    }
    const int64_t next_valid = nr < 0 ? 0 : std::min(std::max<int64_t>(p.d_in - nb * B, 0), B);
    if (next_valid > 0) {  // fetch the next block while this one's later passes run
      t_prefetch.read = reinterpret_cast<const char*>(static_cast<const T*>(p.x) + row_offset(p.x_layout, nr) + nb * B);
      t_prefetch.read_lines = lines_of<T>(next_valid);
      t_prefetch.write = reinterpret_cast<char*>(nwork + nb * B);
      t_prefetch.write_lines = stream ? 0 : lines_of<C>(B);
    } else {
      t_prefetch = NextRowPrefetch{};
    }
    C* buf = stream ? scratch(0, B) : nullptr;
    row_stages(plan, B, xr + b * B, valid, RowStore<C>{wb, B, C(1), false, stream}, stream ? buf : wb);
  }

  // Rows r0..r1, one thread: the first sweep of row r, block by block, with a slice of row r-1's
  // second sweep after each block (two work rows, used in turn). Every row gets the same
  // operations in the same order as run_row, so the result is bitwise the same.
  static void run_rows_overlapped(const FwhtParams& p, const FwhtPlan& plan, int64_t r0, int64_t r1,
                                  void* work_buf) {
    C* work[2] = {static_cast<C*>(work_buf), static_cast<C*>(work_buf) + p.n};
    const int64_t nb = plan.num_blocks, ng = plan.num_groups;
    for (int64_t r = r0; r <= r1; ++r) {
      for (int64_t b = 0; b < nb; ++b) {
        if (r < r1) {
          const bool last = b + 1 == nb;
          const int64_t nr = last ? (r + 1 < r1 ? r + 1 : -1) : r;
          sweep1_block(p, plan, r, work[r & 1], b, nr, nr < 0 ? nullptr : work[nr & 1], last ? 0 : b + 1);
        }
        if (r > r0) groups(p, plan, r - 1, work[(r - 1) & 1], b * ng / nb, (b + 1) * ng / nb);
      }
    }
    t_prefetch = NextRowPrefetch{};
    fence(plan.stream || plan.stream_blocks);
  }

  // One long row, both sweeps, on the calling thread.
  static void run_row(const FwhtParams& p, const FwhtPlan& plan, int64_t r, void* work_buf) {
    run_blocks(p, plan, r, work_buf, 0, plan.num_blocks);
    run_groups(p, plan, r, work_buf, 0, plan.num_groups);
  }

  static void run_groups(const FwhtParams& p, const FwhtPlan& plan, int64_t r, const void* work_buf,
                         int64_t g0, int64_t g1) {
    groups(p, plan, r, work_buf, g0, g1);
    fence(plan.stream);
  }
  static void groups(const FwhtParams& p, const FwhtPlan& plan, int64_t r, const void* work_buf,
                     int64_t g0, int64_t g1) {
    T* yr = static_cast<T*>(p.y) + row_offset(p.y_layout, r);
    const C* work = plan.needs_work ? static_cast<const C*>(work_buf) : reinterpret_cast<const C*>(yr);
    const int64_t G = plan.group, len = plan.num_blocks * G;
    const GroupMap map{__builtin_ctzll(G), __builtin_ctzll(plan.block)};
    C* buf = scratch(1, len);
    const C scale = C(p.scale);
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t col = g * G;
      MappedLoad<typename K::WorkIO> ld{typename K::WorkIO{const_cast<C*>(work) + col}, map};
      // Positions are relative to the group's first column; the store drops those >= d_out.
      MappedStore<RowStore<T>> st{RowStore<T>{yr + col, p.d_out - col, scale, scale != C(1), plan.stream}, map};
      K::stages(len, G, len, ld, st, buf);
    }
  }
};
