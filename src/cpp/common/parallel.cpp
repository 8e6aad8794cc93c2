// OpenMP lives here and only here: thread count, the parallel region, the barrier, and the
// fork handler that keeps children of a multithreaded parent from hanging.
#include "common/parallel.h"

#include <omp.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>

#include "common/tuning.h"

namespace fastcnn {

namespace {

std::atomic<int> g_num_threads{0};       // 0: not set by the user, use OpenMP's default
std::atomic<bool> g_pool_started{false};  // an OpenMP region has run in this process
std::atomic<bool> g_forked_after_pool{false};
std::atomic<double> g_min_thread_work{tuning::kMinNsPerThread};
thread_local bool t_in_region = false;

void on_fork_child() {
  if (g_pool_started.load()) g_forked_after_pool.store(true);
}

struct ForkHandlerInstaller {
  ForkHandlerInstaller() { pthread_atfork(nullptr, nullptr, &on_fork_child); }
} g_fork_handler_installer;

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  // omp_get_max_threads honours OMP_NUM_THREADS and otherwise counts the usable cores.
  return omp_get_max_threads() > 0 ? omp_get_max_threads() : 1;
}

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  }
  g_num_threads.store(n, std::memory_order_relaxed);
}

bool forked_after_pool() { return g_forked_after_pool.load(std::memory_order_relaxed); }

double get_min_thread_work() {
  return g_min_thread_work.load(std::memory_order_relaxed);
}

void set_min_thread_work(double ns) {
  if (!(ns >= 0)) {
    throw std::invalid_argument("set_min_thread_work: ns must be >= 0, got " + std::to_string(ns));
  }
  g_min_thread_work.store(ns, std::memory_order_relaxed);
}

int threads_for(int64_t items, Work work) {
  if (items <= 1 || t_in_region || forked_after_pool()) return 1;
  int64_t n = std::min<int64_t>(get_num_threads(), items);
  const double ns = work.flops / tuning::kFlopsPerNs + work.bytes / tuning::kBytesPerNs;
  const double min_ns = get_min_thread_work();
  if (min_ns > 0 && ns < static_cast<double>(n) * min_ns) {
    n = std::max<int64_t>(1, static_cast<int64_t>(ns / min_ns));
  }
  return static_cast<int>(n);
}

namespace detail {

void run_region(int nthreads, void (*fn)(void*, int, int), void* ctx) {
  g_pool_started.store(true, std::memory_order_relaxed);
  // Exceptions must not cross the OpenMP region boundary: catch, then rethrow on the caller.
  std::exception_ptr error;
  std::atomic<bool> failed{false};
#pragma omp parallel num_threads(nthreads)
  {
    t_in_region = true;
    try {
      fn(ctx, omp_get_thread_num(), omp_get_num_threads());
    } catch (...) {
      if (!failed.exchange(true)) error = std::current_exception();
    }
    t_in_region = false;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace detail

void barrier() {
  if (omp_in_parallel()) {
#pragma omp barrier
  }
}

}  // namespace fastcnn
