// The tuning plan of the CPU kernels: make_plan_t() cuts a transform into pieces (blocks, column
// groups, L1 pieces, packed chunks, streamed stores, leaf radix) from the shapes, the dtype, the
// thread count and the CPU's caches (CpuTuning). Only speed depends on it, never a bit of the
// result: the constants here are measured choices, each with its measurement.
// A fragment of fwht_impl.h, included inside its per-ISA namespace (once per instruction set);
// not a header of its own.
#ifndef ZF_ISA_NS
#error "a fragment of cpu/fwht_impl.h: include that file, not this one"
#endif

// Block size (half of L2, so 1 MB with the 2 MB L2 of the Xeon these comments measured, 512 KB on
// Zen 4): rows up to this many bytes (compute type) are transformed in one sweep with all passes
// in L2; longer rows go through two sweeps, in blocks of at most this size.
// Rows of up to kBlocks such blocks are cut into exactly kBlocks blocks (128 KB ... 1 MB):
// the stages across the blocks are then one pass over column groups of 8 rows, and the smaller
// blocks leave L2 room for the input streaming in (measured on 2^22-element calls, ns per element,
// 1 MB blocks -> 8 blocks: one thread 2^19 0.557 -> 0.526 (it used to be two blocks, the stage
// across them fused into the second one's last pass), 2^20 0.623 -> 0.592; two threads 2^19
// 0.279 -> 0.267, 2^20 0.321 -> 0.299. Four or sixteen blocks, or 8 blocks of 128 KB at 2^18
// instead of one sweep, were no faster).
constexpr int64_t kBlocks = 8;
// A column group gathers about this many bytes (num_blocks rows x group columns): it stays in L1/L2
// while the across-block stages run on it.
constexpr int64_t kGroupBytes = int64_t(32) << 10;
// Rows at least this long are split into blocks when there are fewer rows than threads.
constexpr int64_t kSplitMinBytes = int64_t(32) << 10;
// Outputs at least this large (all rows) are written with non-temporal stores: far beyond L2 and
// likely beyond the last-level cache, where the saved read-for-ownership pays (measured on a Xeon:
// 2^26 fp32 elements, n = 2^10, 0.62 instead of 0.85 ns per element; at 2^22 elements streaming
// was slower there).
constexpr int64_t kStreamBytes = int64_t(32) << 20;

inline int64_t pow2_floor(int64_t v) {
  int64_t p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}

template <class C>
FwhtPlan make_plan_t(const FwhtParams& p, int threads) {
  FwhtPlan plan{};
  const int64_t W = Lanes<C>::W;
  const int64_t esz = sizeof(C);
  const int64_t storage_bytes = (p.dtype == DType::kFloat16 || p.dtype == DType::kBFloat16) ? 2 : esz;
  const CpuTuning& tune = cpu_tuning();
  const int64_t out_bytes = p.rows * p.d_out * storage_bytes, in_bytes = p.rows * p.d_in * storage_bytes;
  // On one thread, outputs also stream when input and output together fill the last-level cache:
  // they cannot both stay there, and with the output bypassing it the input can (often the same
  // tensor call after call, or one a previous layer has just written). Measured on an AMD EPYC
  // (Zen 4) with a 32 MB L3, fp32, 2^22 elements per call, ns per element: n = 2^6 ... 2^8
  // 0.21-0.29 -> 0.17-0.19, 2^10 0.26-0.31 -> 0.24-0.29; rows of 2^11 ... 2^16, interleaved
  // through torch (six rounds): 0.39/0.43/0.47/0.49/0.60/0.55 -> 0.33/0.31/0.39/0.42/0.43/0.47.
  // The price: when the recycled output's lines are still dirty in the caches (something wrote
  // into that memory just before) each line is flushed first; a standalone harness that rewrote
  // the output between calls measured 2^11/2^15 9 % and 5 % faster, 2^12 17 % and 2^13/2^14/2^16
  // 5 % slower. On two threads streaming measured slower (short rows 0.09-0.13 -> 0.15-0.19).
  // Blocked rows transformed inside y never stream (below).
  plan.stream = out_bytes >= kStreamBytes ||
                (threads == 1 && tune.l3_bytes > 0 && in_bytes + out_bytes >= tune.l3_bytes);
  // In place (y is x) nothing streams: every output line has just been read, so it is in the
  // cache and already owned (no read for ownership to save), and a non-temporal store onto a
  // cached line flushes it first. Measured with peer_bench's in-place protocol (fresh copy of the
  // input before each call), one thread, fp32, 2^22 elements per call, ns per element: streamed
  // 2^10 / 2^12 / 2^15 / 2^16 0.36 / 0.53 / 0.78 / 0.61, against 0.31 / 0.31 / 0.41 / 0.45 out of
  // place.
  const bool in_place = p.x != nullptr && p.x == p.y;
  if (in_place) plan.stream = false;
  if (tune.stream_override >= 0) plan.stream = tune.stream_override == 1;
  // Pieces: the largest power of two at most 2/3 of L1d (32 KB of a 48 KB L1d, 16 KB of 32 KB).
  // fold_padding (fwht_dispatch.cpp) uses the same rule, before any plan exists.
  plan.piece = pow2_floor(tune.l1d_bytes * 2 / 3) / esz;
  // Packed chunks: an eighth of L1d (measured on Zen 4, n = 2^9 streamed: 16 KB chunks 0.38-0.41,
  // 4 KB chunks 0.21-0.24 ns per element).
  plan.pack_elems = std::max<int64_t>(pow2_floor(tune.l1d_bytes / 8) / esz, 512);
  // Zen 4 splits each 512-bit operation in two; there a leaf of 8 vectors (7 stages per pass)
  // beat one of 16 (8 stages): measured, one thread, fp32, 2^22 elements per call, n = 2^12:
  // 0.42-0.47 -> 0.34-0.36 ns per element, n = 2^16: 0.47-0.51 -> 0.42-0.45.
  plan.leaf_radix_log2 = tune.amd ? std::min(ZF_RADIX_LOG2, 3) : ZF_RADIX_LOG2;
  // A row of at most 2^ZF_RADIX_LOG2 vectors (fp32 n <= 2^8 with AVX-512) fits one pass. That
  // pass is taken when its stores do not miss: streamed (no read for ownership) or in place (the
  // lines were just loaded). Out of place with plain stores, the cap stays (see Kern::stages).
  // Measured on Zen 4, fp32 n = 2^8, 2^22 elements per call, five peer_bench runs each, ns per
  // element, one pass -> capped: one thread (streamed) 0.190 -> 0.254, in place 0.196 -> 0.221 on
  // one thread and 0.107 -> 0.117 on two; two threads out of place 0.211 -> 0.134.
  // Only when x and y rows step alike: bursts of 16 lines are sensitive to where y sits relative
  // to x (burst_width.c), and with different steps every relative offset comes round. One thread,
  // streamed out= rows of a wider buffer (320 elements apart), 2^8: 0.784 in one pass, 0.373-0.462
  // capped at 8 vectors (12 alternating rounds).
  const bool same_row_steps = p.rows <= 1 || (p.x_layout.ndim == 1 && p.y_layout.ndim == 1 &&
                                              p.x_layout.strides[0] == p.y_layout.strides[0]);
  if (p.n <= (W << ZF_RADIX_LOG2) && (plan.stream || in_place) && same_row_steps)
    plan.leaf_radix_log2 = ZF_RADIX_LOG2;
  int64_t block = pow2_floor(tune.l2_bytes / 2) / esz;
  // One sweep only for rows of up to a quarter of L2: the row and the input streaming in must both
  // stay in L2 (measured on Zen 4 (1 MB L2), one thread, n = 2^17: one sweep 0.53-0.56, eight
  // blocks of 64 KB 0.47-0.56 ns per element; on the Xeon (2 MB L2), 1 MB rows in one sweep or in
  // eight blocks were equally fast).
  const int64_t one_sweep = pow2_floor(tune.l2_bytes / 4) / esz;
  // Rows exactly as large as L2 take 4 blocks of L2/4 instead (the stage across them joins the
  // second sweep): Zen 4, n = 2^18 fp32, 2^22 elements per call, 0.52 -> 0.50 ns per element on
  // one thread, 0.282 -> 0.270 on two; larger rows were slower in 4 blocks.
  const int64_t blocks = p.n * esz == pow2_floor(tune.l2_bytes) ? 4 : kBlocks;
  if (p.n > one_sweep && p.n <= kBlocks * block) block = p.n / blocks;
  if (p.rows < threads && p.n * esz >= kSplitMinBytes) {
    // Fewer rows than threads: cut each row into at least 2*threads blocks so all threads work.
    int64_t want = 1;
    while (want < 2 * threads) want <<= 1;
    block = std::min(block, std::max<int64_t>(p.n / want, 4096 / esz));
  }
  if (p.n <= block || p.lg_copies > 0) {  // folded rows fit an L1 piece (fold_padding)
    plan.blocked = false;
    plan.block = p.n;
    plan.num_blocks = 1;
    plan.rows_grain = std::max<int64_t>(1, (int64_t(16) << 10) / std::max<int64_t>(p.n, 1));
    return plan;
  }
  plan.blocked = true;
  plan.block = block;
  plan.num_blocks = p.n / block;
  int64_t group = W;
  while (group * 2 <= block && plan.num_blocks * group * 2 * esz <= kGroupBytes) group *= 2;
  plan.group = group;
  plan.num_groups = block / group;
  const bool same = (p.dtype == DType::kFloat32 || p.dtype == DType::kFloat64);
  plan.needs_work = !(same && p.d_out == p.n);
  // One thread with a streamed output and rows at least as large as L2: the first sweep goes into
  // a work row (it waits in L2/L3 for the second sweep) and the second sweep streams from it into
  // y, so y's lines are never read for ownership. Measured on Zen 4 (1 MB L2), fp32, 2^22 elements
  // per call, alternating peer_bench runs, ns per element, in y -> work row: 2^18 0.605 / 0.684 ->
  // 0.575 / 0.594, 2^19 0.628 -> 0.558, 2^20 0.639 -> 0.571 (two sets of 8 and 10 rounds); 2^17
  // (512 KB rows, which stay in L2) 0.513 -> 0.526, so smaller rows stay in y. On two threads the
  // work row was slower (2^17 ... 2^19 0.25 / 0.31 / 0.31 -> 0.29 / 0.33 / 0.33).
  if (plan.stream && !in_place && threads == 1 && p.n * esz >= tune.l2_bytes) plan.needs_work = true;
  plan.work_bytes = plan.needs_work ? p.n * esz : 0;
  // Non-temporal stores to lines that are in the cache are slow (the line is flushed first). When
  // the row is transformed inside y, the second sweep writes exactly the lines it has just read:
  // then neither sweep streams (measured on Zen 4 (32 MB L3), fp32, 2^26 elements per call, one
  // thread, rows of 2^17 ... 2^22: 0.96-1.08 ns per element streamed, 0.59-0.76 not).
  // With a separate work row, the second sweep streams into y, and the first sweep streams into
  // the work row only when that row could not wait in the last-level cache for the second.
  const int64_t l3 = tune.l3_bytes > 0 ? tune.l3_bytes : (int64_t(32) << 20);
  if (!plan.needs_work && tune.stream_override != 1) plan.stream = false;
  plan.stream_blocks = plan.stream && plan.needs_work && p.n * esz > l3 / 2;
  // One thread with a work row and a streamed output: each row's second sweep (few stages, its
  // time mostly the streamed stores) runs in slices between the next row's first-sweep blocks
  // (many stages in cache), so that the stores drain while the core computes. Measured on Zen 4,
  // fp32, 2^22 elements per call, one thread, ten alternating peer_bench rounds, ns per element,
  // one row after the other -> overlapped: 2^18 0.596 -> 0.545, 2^19 0.598 -> 0.550, 2^20 0.652 ->
  // 0.611. Not for rows streamed into the work row too (they do not fit the last-level cache).
  plan.overlap_rows = threads == 1 && plan.needs_work && plan.stream && !plan.stream_blocks;
  plan.rows_grain = 1;
  return plan;
}
