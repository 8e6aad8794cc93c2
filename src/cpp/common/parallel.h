// The one place where fastcnn decides how many threads run and starts them.
// Kernels describe their work as independent items (tiles, images, channels) plus an estimate
// of its size (Work: flops and bytes), and call parallel_for / parallel_run; they never use
// OpenMP pragmas themselves. Whether a region is worth a second thread is decided here, from
// the estimate and the one threshold in common/tuning.h: a call too small to pay for waking a
// thread runs on the calling thread. Partitioning is static and contiguous, and kernels must
// make each item's arithmetic independent of which thread runs it, so results are the same
// bits for any thread count.
//
// Fork safety: GNU OpenMP's pool does not survive fork(); a child that enters a parallel region
// after the parent started the pool hangs. A pthread_atfork handler notes such a fork and the
// child then runs every region on its calling thread.
#pragma once

#include <cstdint>

namespace fastcnn {

// Threads used by kernels: set_num_threads(n) if called, else OMP_NUM_THREADS, else the cores.
int get_num_threads();
void set_num_threads(int n);  // n >= 1; throws std::invalid_argument otherwise

// True in a child process forked after this process had started its OpenMP pool.
bool forked_after_pool();

// The size of a region's work: floating-point operations and bytes read plus written, over
// all its items. Only an estimate (the order of magnitude decides).
struct Work {
  double flops = 0;
  double bytes = 0;
};
inline Work operator*(Work w, double times) {
  return Work{w.flops * times, w.bytes * times};
}

// Threads a region with `items` independent work items and total `work` would use now (>= 1):
// never more than the items, nor more than leave each thread kMinNsPerThread of estimated work
// (common/tuning.h); 1 inside another fastcnn region (no nesting) or in a forked child.
int threads_for(int64_t items, Work work);

// The per-thread work threshold in force (ns of estimated work; tuning::kMinNsPerThread unless
// set). Tests set 0 so that every region with two items or more runs on several threads.
double get_min_thread_work();
void set_min_thread_work(double ns);  // ns >= 0; throws std::invalid_argument otherwise

namespace detail {
void run_region(int nthreads, void (*fn)(void*, int, int), void* ctx);
}

// Calls body(tid, nthreads) once on each of `nthreads` threads (nthreads from threads_for, or
// 1).
template <class Body>
void parallel_run(int nthreads, Body&& body) {
  if (nthreads <= 1) {
    body(0, 1);
    return;
  }
  auto trampoline = [](void* ctx, int tid, int nt) { (*static_cast<Body*>(ctx))(tid, nt); };
  detail::run_region(nthreads, trampoline, static_cast<void*>(&body));
}

// The contiguous share [begin, end) of n items owned by thread tid of nthreads.
inline void partition(int64_t n, int tid, int nthreads, int64_t& begin, int64_t& end) {
  begin = n * tid / nthreads;
  end = n * (tid + 1) / nthreads;
}

// Calls body(begin, end) over contiguous chunks of [0, n) on threads_for(n, work) threads.
template <class Body>
void parallel_for(int64_t n, Work work, Body&& body) {
  if (n <= 0) return;
  parallel_run(threads_for(n, work), [&](int tid, int nt) {
    int64_t begin, end;
    partition(n, tid, nt, begin, end);
    if (begin < end) body(begin, end);
  });
}

// Synchronises the threads of the enclosing parallel_run region (no-op outside one).
void barrier();

}  // namespace fastcnn
