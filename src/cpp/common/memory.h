// Checked size arithmetic and aligned scratch buffers.
// Scratch memory is owned per call or per thread (never static), so concurrent calls from
// several Python threads never share it.
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

// A 64-byte-aligned, uninitialised array of T that frees itself.
template <class T>
class AlignedBuffer {
 public:
  static constexpr std::size_t kAlign = 64;

  AlignedBuffer() = default;
  explicit AlignedBuffer(int64_t count) { reset(count); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept : ptr_(o.ptr_), count_(o.count_) {
    o.ptr_ = nullptr;
    o.count_ = 0;
  }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    if (this != &o) {
      std::free(ptr_);
      ptr_ = o.ptr_;
      count_ = o.count_;
      o.ptr_ = nullptr;
      o.count_ = 0;
    }
    return *this;
  }
  ~AlignedBuffer() { std::free(ptr_); }

  void reset(int64_t count) {
    std::free(ptr_);
    ptr_ = nullptr;
    count_ = 0;
    if (count <= 0) return;
    std::size_t bytes = static_cast<std::size_t>(checked_mul(count, sizeof(T), "scratch buffer"));
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    ptr_ = static_cast<T*>(std::aligned_alloc(kAlign, bytes));
    if (ptr_ == nullptr) throw std::bad_alloc();
    count_ = count;
  }
  T* data() { return ptr_; }
  const T* data() const { return ptr_; }
  int64_t size() const { return count_; }

 private:
  T* ptr_ = nullptr;
  int64_t count_ = 0;
};

}  // namespace fastcnn
