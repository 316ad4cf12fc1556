// The CPU output cache (declared in output_cache.h): an allocator that keeps the buffers of freed
// large outputs, and empty_output(), through which the CPU glue allocates outputs and work rows.
#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include <sys/mman.h>

#include "cpu/output_cache.h"

namespace zerofwht {

// A large output freshly obtained from malloc is usually fresh memory from the kernel: every 4 KB
// page faults on first write and is zeroed by the kernel, which on this machine cost as much as the
// transform itself (0.58 instead of 0.41 ns per element at n = 4096, 16 MB outputs, one thread).
// Outputs of at least kMinCachedBytes are therefore allocated through this allocator, which keeps
// the buffers of freed outputs (up to a limit, exact page-rounded sizes) and hands them out again,
// the way PyTorch's CUDA caching allocator does. Tensors made with it are ordinary CPU tensors
// (resizable; their memory is 64-byte aligned).
// Buffers of at least kMinHugeBytes are mappings of their own, 2 MB aligned and asked to be backed
// by transparent huge pages (madvise: with THP in "madvise" mode, the usual setting, memory nobody
// asks for never gets them). That saves TLB misses, in the strided passes most (measured, one
// thread, 2^22 fp32 elements per call, medians of three interleaved runs, ns per element, 4 KB ->
// huge pages: n = 2^6 0.303 -> 0.292, 2^9 0.332 -> 0.312, 2^16 0.447 -> 0.422, 2^17 0.487 -> 0.461,
// 2^18 0.528 -> 0.501, 2^19 0.584 -> 0.556, 2^20 0.660 -> 0.625). ZEROFWHT_CPU_HUGEPAGES=0 turns
// this off.
namespace {

constexpr size_t kMinCachedBytes = size_t(1) << 20;
constexpr size_t kPage = 4096;
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kMinHugeBytes = size_t(4) << 20;

class OutputCache final : public c10::Allocator {
 public:
  static OutputCache& instance() {
    static OutputCache* cache = new OutputCache();  // never destroyed: outputs may outlive exit hooks
    return *cache;
  }

  c10::DataPtr allocate(size_t n) override {
    const size_t bytes = (std::max<size_t>(n, 1) + kPage - 1) / kPage * kPage;
    Block* b = take(bytes);
    if (b == nullptr) {
      b = (huge_pages_ && bytes >= kMinHugeBytes) ? map_huge(bytes) : nullptr;
      if (b == nullptr) {
        void* p = nullptr;
        TORCH_CHECK(posix_memalign(&p, 64, bytes) == 0 && p != nullptr, "zerofwht: out of memory allocating ",
                    bytes, " bytes");
        b = new Block{p, bytes, 0};
      }
    }
    if (poison_) std::memset(b->ptr, 0xff, bytes);  // all-ones bits: NaN in every float type
    return {b->ptr, b, &OutputCache::release, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  void set_limit(int64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = static_cast<size_t>(std::max<int64_t>(bytes, 0));
    trim_locked(limit_);
  }
  CacheStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return CacheStats{static_cast<int64_t>(cached_), static_cast<int64_t>(limit_), static_cast<int64_t>(free_.size()),
                      hits_, misses_};
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    trim_locked(0);
  }

 private:
  struct Block {
    void* ptr;
    size_t bytes;   // the size asked for (page-rounded): the key for reuse
    size_t mapped;  // > 0: a mapping of this many bytes of its own (munmap); 0: from malloc
  };

  // A fresh anonymous mapping, 2 MB aligned and rounded up to whole huge pages (at most 2 MB more),
  // marked MADV_HUGEPAGE before anything touches it, so that its first-touch faults take huge pages
  // (memory recycled by malloc may already be backed by 4 KB pages). nullptr if that fails.
  static Block* map_huge(size_t bytes) {
#if defined(MADV_HUGEPAGE) && defined(MAP_ANONYMOUS)
    const size_t len = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* raw = mmap(nullptr, len + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
    if (aligned > start) munmap(raw, aligned - start);  // trim to the aligned range
    const size_t tail = (start + len + kHugePage) - (aligned + len);
    if (tail > 0) munmap(reinterpret_cast<void*>(aligned + len), tail);
    void* p = reinterpret_cast<void*>(aligned);
    madvise(p, len, MADV_HUGEPAGE);  // a hint: if refused, ordinary pages
    return new Block{p, bytes, len};
#else
    (void)bytes;
    return nullptr;
#endif
  }
  static void free_block(Block* b) {
    if (b->mapped > 0) munmap(b->ptr, b->mapped);
    else std::free(b->ptr);
    delete b;
  }

  OutputCache() {
    const char* env = std::getenv("ZEROFWHT_CPU_CACHE_MB");
    limit_ = (env != nullptr && *env != 0 ? size_t(std::max(0L, std::atol(env))) : size_t(1024)) << 20;
    // Tests set ZEROFWHT_CPU_CACHE_POISON=1: every buffer handed out is NaN-filled first, so an
    // element a kernel fails to write shows instead of reading a previous output.
    const char* poison = std::getenv("ZEROFWHT_CPU_CACHE_POISON");
    poison_ = poison != nullptr && *poison == '1';
    const char* huge = std::getenv("ZEROFWHT_CPU_HUGEPAGES");
    huge_pages_ = !(huge != nullptr && *huge == '0');
  }

  Block* take(size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = free_.size(); i-- > 0;) {  // most recently freed first (warmest)
      if (free_[i]->bytes == bytes) {
        Block* b = free_[i];
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
        cached_ -= bytes;
        ++hits_;
        return b;
      }
    }
    ++misses_;
    return nullptr;
  }

  static void release(void* ctx) {
    Block* b = static_cast<Block*>(ctx);
    OutputCache& c = instance();
    {
      std::lock_guard<std::mutex> lock(c.mutex_);
      if (b->bytes <= c.limit_) {
        c.free_.push_back(b);
        c.cached_ += b->bytes;
        c.trim_locked(c.limit_);  // the oldest buffers go first
        return;
      }
    }
    free_block(b);
  }

  void trim_locked(size_t target) {
    while (cached_ > target && !free_.empty()) {
      Block* b = free_.front();
      free_.erase(free_.begin());
      cached_ -= b->bytes;
      free_block(b);
    }
  }

  std::mutex mutex_;
  std::vector<Block*> free_;  // oldest first
  size_t cached_ = 0, limit_ = 0;
  bool poison_ = false;
  bool huge_pages_ = true;
  int64_t hits_ = 0, misses_ = 0;
};

}  // namespace

CacheStats cpu_cache_stats() { return OutputCache::instance().stats(); }
void cpu_cache_clear() { OutputCache::instance().clear(); }
void cpu_cache_set_limit(int64_t bytes) { OutputCache::instance().set_limit(bytes); }

at::Tensor empty_output(at::IntArrayRef shape, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * options.dtype().itemsize();
  if (bytes < kMinCachedBytes) return at::empty(shape, options);
  return at::detail::empty_generic(shape, &OutputCache::instance(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   options.dtype().toScalarType(), std::nullopt);
}

}  // namespace zerofwht
