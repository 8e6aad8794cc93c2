// Checked size arithmetic and aligned scratch buffers.
// Scratch memory is owned per call or per thread (never static), so concurrent calls from
// several Python threads never share it. The blocks behind AlignedBuffer come from a small,
// bounded per-thread cache (memory.cpp): a call's scratch reuses what the thread's earlier calls
// freed instead of asking malloc again.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

namespace fastcnn {

// a * b for non-negative sizes; throws std::invalid_argument (ValueError in Python) on overflow.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) {
    throw std::invalid_argument(std::string(what) + ": size " + std::to_string(a) + " * " +
                                std::to_string(b) + " overflows or is negative");
  }
  return r;
}

inline int64_t round_up(int64_t x, int64_t multiple) {
  return (x + multiple - 1) / multiple * multiple;
}
inline int64_t ceil_div(int64_t x, int64_t d) { return (x + d - 1) / d; }

// True when no element of p[0:n] is NaN or infinite: x - x is +0 exactly for finite x and NaN
// otherwise, so sums of it stay +0 until a NaN arrives and then stay NaN. Sixteen independent
// sums vectorise with no reassociation (an AND of per-element compares compiled to scalar code:
// 9 instructions an element, a measurable part of a one-image prediction's convolutions).
template <class T>
bool all_finite(const T* p, int64_t n) {
  constexpr int kLanes = 16;
  T acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) acc[l] += p[i + l] - p[i + l];
  }
  for (; i < n; ++i) acc[0] += p[i] - p[i];
  bool ok = true;
  for (int l = 0; l < kLanes; ++l) ok &= acc[l] == T(0);
  return ok;
}

// The calling thread's scratch cache (memory.cpp). acquire returns a 64-byte-aligned block of
// at least `bytes` (throws std::bad_alloc) and its capacity: the smallest of the thread's
// cached blocks that holds it, else a new one. release gives a block back to the calling
// thread's cache, which keeps at most tuning::kWorkspaceCacheBytes and frees the least recently
// released blocks beyond that, so one huge call leaves nothing huge behind. A block released
// by another thread than the one that took it joins the releasing thread's cache; each cache is
// only ever touched by its own thread.
namespace workspace {
constexpr std::size_t kAlign = 64;
void* acquire(std::size_t bytes, std::size_t& capacity);
void release(void* block, std::size_t capacity) noexcept;

// Process-wide counters (relaxed atomics): blocks and bytes the caches took from malloc since
// start-up, and the bytes all threads' caches hold now. For the tests (fastcnn._core._testing).
struct Stats {
  int64_t allocations;
  int64_t allocated_bytes;
  int64_t cached_bytes;
};
Stats stats();
// Frees the calling thread's cached blocks (tests; a thread's cache also goes at its exit).
void release_thread_cache() noexcept;
}  // namespace workspace

// A 64-byte-aligned, uninitialised array of T that gives its block back to the calling
// thread's scratch cache when it is destroyed or reset.
template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(int64_t count) { reset(count); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept
      : ptr_(o.ptr_), count_(o.count_), capacity_(o.capacity_) {
    o.ptr_ = nullptr;
    o.count_ = 0;
    o.capacity_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      free_block();
      ptr_ = o.ptr_;
      count_ = o.count_;
      capacity_ = o.capacity_;
      o.ptr_ = nullptr;
      o.count_ = 0;
      o.capacity_ = 0;
    }
    return *this;
  }
  ~AlignedBuffer() { free_block(); }

  void reset(int64_t count) {
    free_block();
    if (count <= 0) return;
    const auto bytes = static_cast<std::size_t>(checked_mul(count, sizeof(T), "scratch buffer"));
    ptr_ = static_cast<T*>(workspace::acquire(bytes, capacity_));
    count_ = count;
  }
  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  int64_t size() const { return count_; }

 private:
  void free_block() noexcept {
    if (ptr_ != nullptr) workspace::release(ptr_, capacity_);
    ptr_ = nullptr;
    count_ = 0;
    capacity_ = 0;
  }

  T* ptr_ = nullptr;
  int64_t count_ = 0;
  std::size_t capacity_ = 0;
};

}  // namespace fastcnn
