// The per-thread scratch cache behind AlignedBuffer (memory.h). Leaves out sharing blocks
// between threads' caches (no locks, no shared static state) and numpy's arrays.
//
// Why: the kernels take their scratch (packed panels, padded images, Winograd tiles, the weight
// gradients' partial sums) per call: a DeepConvNet training step at batch 100 asked malloc for
// ~650 blocks, 57 MiB in all, every step. Now each thread keeps the blocks it freed, up to
// tuning::kWorkspaceCacheBytes, and takes them again in its next calls: after its first step a
// run of training steps allocates no scratch at all (tests/test_memory.py).
//
// Policy: sizes are rounded up to a size class (at most 1/8 more); a request takes the smallest
// cached block that holds it; a released block joins the releasing thread's cache, and beyond
// kWorkspaceCacheBytes or kWorkspaceCacheSlots blocks the least recently released are freed. A
// block larger than the bound is freed at once, so one huge call (a GEMM of thousands of rows,
// a huge image) leaves nothing huge behind. The bound is per thread (4 MiB: DeepConvNet's
// steps at batch 100 keep 3.9 MiB on the calling thread and 1.3 MiB on the pool thread of a
// 2-core machine, and allocate nothing after the first), so a process keeps at most (pool
// threads + calling threads) x 4 MiB. Blocks of kWorkspaceMapBytes
// or more are mapped on their own (mmap), outside malloc's heap: kept inside it, they pin
// holes between numpy's arrays that the heap then grows around (measured: DeepConvNet's first
// training step at batch 100 grew the process's peak by 18.3 MiB with them there, 13.9 here).
#include "common/memory.h"

#include <sys/mman.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <new>

#include "common/tuning.h"

namespace fastcnn::workspace {

namespace {

std::atomic<int64_t> g_allocations{0};
std::atomic<int64_t> g_allocated_bytes{0};
std::atomic<int64_t> g_cached_bytes{0};

// The size class of a request: a multiple of an eighth of the largest power of two at or below
// it (and of 64 bytes), so requests that differ by a little share blocks.
std::size_t size_class(std::size_t bytes) {
  std::size_t pow2 = 64;
  while (pow2 <= bytes / 2) pow2 *= 2;
  const std::size_t step = pow2 >= 512 ? pow2 / 8 : 64;
  return (bytes + step - 1) / step * step;
}

// A new block of `bytes` (a size class: a multiple of 64), or nullptr when out of memory.
void* new_block(std::size_t bytes) {
  if (bytes >= tuning::kWorkspaceMapBytes) {  // page-aligned, so 64-byte aligned too
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  return std::aligned_alloc(kAlign, bytes);
}

void free_block(void* p, std::size_t bytes) noexcept {
  if (bytes >= tuning::kWorkspaceMapBytes) {
    munmap(p, bytes);
  } else {
    std::free(p);
  }
}

class Cache {
 public:
  ~Cache() {
    clear();
    gone_ = true;
  }

  // The smallest cached block of at least `need` bytes, or nullptr.
  void* take(std::size_t need, std::size_t& capacity) {
    int best = -1;
    for (int i = 0; i < n_; ++i) {
      const std::size_t b = blocks_[i].bytes;
      if (b >= need && (best < 0 || b < blocks_[best].bytes)) best = i;
    }
    if (best < 0) return nullptr;
    void* p = blocks_[best].ptr;
    capacity = blocks_[best].bytes;
    remove(best);
    return p;
  }

  void put(void* p, std::size_t bytes) noexcept {
    if (n_ == tuning::kWorkspaceCacheSlots) evict_oldest();
    blocks_[n_++] = {p, bytes};
    total_ += bytes;
    g_cached_bytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    while (total_ > tuning::kWorkspaceCacheBytes) evict_oldest();
  }

  void clear() noexcept {
    while (n_ > 0) evict_oldest();
  }

  // True once the calling thread's cache is destroyed (thread exit): blocks released after
  // that are freed at once.
  static bool gone() { return gone_; }

 private:
  struct Block {
    void* ptr;
    std::size_t bytes;
  };

  void remove(int i) noexcept {
    total_ -= blocks_[i].bytes;
    g_cached_bytes.fetch_sub(static_cast<int64_t>(blocks_[i].bytes), std::memory_order_relaxed);
    for (int j = i + 1; j < n_; ++j) blocks_[j - 1] = blocks_[j];
    --n_;
  }

  void evict_oldest() noexcept {
    const Block b = blocks_[0];
    remove(0);
    free_block(b.ptr, b.bytes);
  }

  std::array<Block, tuning::kWorkspaceCacheSlots> blocks_{};  // least recently released first
  int n_ = 0;
  std::size_t total_ = 0;
  static thread_local bool gone_;
};

thread_local bool Cache::gone_ = false;
thread_local Cache t_cache;

}  // namespace

void* acquire(std::size_t bytes, std::size_t& capacity) {
  const std::size_t need = size_class(bytes);
  if (need <= tuning::kWorkspaceCacheBytes && !Cache::gone()) {
    if (void* p = t_cache.take(need, capacity)) return p;
  }
  void* p = new_block(need);
  if (p == nullptr && !Cache::gone()) {  // out of memory: give the cached blocks back first
    t_cache.clear();
    p = new_block(need);
  }
  if (p == nullptr) throw std::bad_alloc();
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  g_allocated_bytes.fetch_add(static_cast<int64_t>(need), std::memory_order_relaxed);
  capacity = need;
  return p;
}

void release(void* block, std::size_t capacity) noexcept {
  if (capacity > tuning::kWorkspaceCacheBytes || Cache::gone()) {
    free_block(block, capacity);
    return;
  }
  t_cache.put(block, capacity);
}

Stats stats() {
  return {g_allocations.load(std::memory_order_relaxed),
          g_allocated_bytes.load(std::memory_order_relaxed),
          g_cached_bytes.load(std::memory_order_relaxed)};
}

void release_thread_cache() noexcept {
  if (!Cache::gone()) t_cache.clear();
}

}  // namespace fastcnn::workspace
