// Internal helper of the ops family: runs an elementwise body over [0, n) in blocks.
// Work items are 16K-element blocks, so arrays below one block stay on the calling thread
// (starting a region costs more than the work) and big ones split into contiguous ranges.
#pragma once

#include <algorithm>
#include <cstdint>

#include "common/memory.h"
#include "common/parallel.h"

namespace fastcnn::ops_detail {

constexpr int64_t kGrain = 16384;

// Calls body(begin, end) over contiguous ranges covering [0, n); each element is handled by
// exactly one call, so elementwise results never depend on the split.
template <class Body>
void parallel_elements(int64_t n, Body&& body) {
  if (n <= 0) return;
  parallel_for(ceil_div(n, kGrain),
               [&](int64_t b0, int64_t b1) { body(b0 * kGrain, std::min(b1 * kGrain, n)); });
}

// Threads for `items` independent items whose total work is `elements` elements.
inline int threads_for_work(int64_t items, int64_t elements) {
  return threads_for(std::min(items, std::max<int64_t>(1, ceil_div(elements, kGrain))));
}

}  // namespace fastcnn::ops_detail
