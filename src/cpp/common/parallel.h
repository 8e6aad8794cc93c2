// The one place where fastcnn decides how many threads run and starts them (parallel.cpp
// holds the thread pool). Kernels describe their work as independent items (tiles, images,
// channels) plus an estimate of its size (Work: flops and bytes), and call parallel_for /
// parallel_run; they never start threads themselves. Whether a region is worth a second
// thread is decided here, from the estimate and the one threshold in common/tuning.h: a call
// too small to pay for waking a thread runs on the calling thread.
//
// A region is split into parts, contiguous ranges of its items that depend only on the part
// count. Threads claim parts one at a time, the calling thread first, so a helper the OS has
// not scheduled yet delays nothing: its parts run on the caller. Kernels must make each item's
// arithmetic independent of which part and thread run it, so results are the same bits for any
// thread count.
//
// Fork safety: a child of fork() has none of its parent's threads; its first region starts a
// new pool. A part must not fork: the child would wait for parts its parent's helpers held.
#pragma once

#include <cstdint>

namespace fastcnn {

// Threads used by kernels: set_num_threads(n) if called, else OMP_NUM_THREADS, else the cores.
int get_num_threads();
void set_num_threads(int n);  // n >= 1; throws std::invalid_argument otherwise

// The size of a region's work: floating-point operations and bytes read plus written, over
// all its items. Only an estimate (the order of magnitude decides).
struct Work {
  double flops = 0;
  double bytes = 0;
};
inline Work operator*(Work w, double times) { return Work{w.flops * times, w.bytes * times}; }

// Parts to split a region with `items` independent work items and total `work` into (>= 1),
// one per thread it is worth: never more than the items or the threads, nor more than leave
// each kMinNsPerThread of estimated work (common/tuning.h); 1 inside another fastcnn region
// (no nesting). (More parts than threads, for balance when a helper starts late, measured
// no better: 5 % faster idle, 10 % slower with one core busy, over DeepConvNet's convolutions
// and pools at batch 2-8.)
int threads_for(int64_t items, Work work);

// The per-thread work threshold in force (ns of estimated work; tuning::kMinNsPerThread unless
// set). Tests set 0 so that every region with two items or more runs on several threads.
double get_min_thread_work();
void set_min_thread_work(double ns);  // ns >= 0; throws std::invalid_argument otherwise

namespace detail {
void run_region(int parts, void (*fn)(void*, int, int), void* ctx);
}

// Calls body(part, parts) once for each part in [0, parts) (parts from threads_for, or 1), on
// the calling thread and on pool threads that are free, each part on one thread. Rethrows the
// first exception a part threw, once every part has run.
template <class Body>
void parallel_run(int parts, Body&& body) {
  if (parts <= 1) {
    body(0, 1);
    return;
  }
  auto trampoline = [](void* ctx, int part, int n) { (*static_cast<Body*>(ctx))(part, n); };
  detail::run_region(parts, trampoline, static_cast<void*>(&body));
}

// The contiguous share [begin, end) of n items that part `part` of `parts` covers.
inline void partition(int64_t n, int part, int parts, int64_t& begin, int64_t& end) {
  begin = n * part / parts;
  end = n * (part + 1) / parts;
}

// Calls body(begin, end) over contiguous chunks of [0, n), one per part of threads_for(n, work).
template <class Body>
void parallel_for(int64_t n, Work work, Body&& body) {
  if (n <= 0) return;
  parallel_run(threads_for(n, work), [&](int part, int parts) {
    int64_t begin, end;
    partition(n, part, parts, begin, end);
    if (begin < end) body(begin, end);
  });
}

}  // namespace fastcnn
