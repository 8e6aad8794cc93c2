// The thread pool, and the only code in fastcnn that starts or synchronises threads.
//
// Why not OpenMP: an OpenMP region ends in a barrier that waits for every thread of its team,
// including one the OS has not yet scheduled. On these 2-core machines another process often
// holds one core, and then each region waited for that thread's next time slice (100-200 us per
// region measured; a DeepConvNet training step took 108-125 ms with one core busy against 49 ms
// idle), so regions under ~0.5 ms of work had to stay single-threaded. Here a region is a set
// of parts that threads claim one at a time: the caller starts on part 0 at once and takes
// every part no helper has claimed, so it never waits for a thread that has not started, only
// for parts already running.
//
// Protocol (all atomics sequentially consistent unless marked):
//  * the caller owns the region: it holds `busy_` (regions from other threads meanwhile run on
//    their own thread), waits until no helper of an earlier region is still inside, writes the
//    region, opens it, and bumps `epoch_`, under `mutex_` so sleeping helpers cannot miss it;
//  * a helper that sees a new epoch counts itself in (`inside_`), joins only if the region is
//    open and a seat is left, claims parts until none are left, and counts itself out;
//  * the caller claims parts like a helper, closes the region, and waits until every claimed
//    part is done (`done_`); helpers still counting out are waited for by the next region.
// The caller's `open_ = false` then `inside_ == 0` and a helper's `inside_ += 1` then `open_`
// form a Dekker pair: a late helper of one region either sees it closed or sees the next one
// open with all its fields written. They must stay sequentially consistent (acquire/release
// would let a helper read a stale `open_ == true` while the next region is being written, and
// ThreadSanitizer would not notice). Checked with a TSan/ASan stress of nested regions,
// throwing parts, several calling threads, thread-start failures and fork().
#include "common/parallel.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

#include "common/tuning.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FASTCNN_CPU_RELAX() _mm_pause()
#else
#define FASTCNN_CPU_RELAX() std::this_thread::yield()
#endif

namespace fastcnn {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<int> g_num_threads{0};  // 0: not set by the user
std::atomic<double> g_min_thread_work{tuning::kMinNsPerThread};
thread_local bool t_in_region = false;

// Marks the calling thread as inside a region for its lifetime and restores the previous state
// after (a nested region's end must not mark the enclosing part as outside a region).
class InRegion {
 public:
  InRegion() : saved_(t_in_region) { t_in_region = true; }
  ~InRegion() { t_in_region = saved_; }
  InRegion(const InRegion&) = delete;
  InRegion& operator=(const InRegion&) = delete;

 private:
  bool saved_;
};

// Threads when the user has not chosen: OMP_NUM_THREADS (the variable users and other
// libraries set to limit threads; its first entry), else the CPUs this process may run on.
int default_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end != env && n >= 1 && n <= 4096) return static_cast<int>(n);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n >= 1 ? static_cast<int>(n) : 1;
}

// Spins with a pause until pred() holds or `spin` has passed; returns whether it holds.
template <class Pred>
bool spin_until(Pred&& pred, std::chrono::microseconds spin) {
  if (pred()) return true;
  const Clock::time_point until = Clock::now() + spin;
  for (int i = 0;; ++i) {
    if (pred()) return true;
    if ((i & 63) == 63 && Clock::now() > until) return false;
    FASTCNN_CPU_RELAX();
  }
}

// Spins until pred() holds; after `spin`, yields the CPU between checks.
template <class Pred>
void wait_until(Pred&& pred, std::chrono::microseconds spin) {
  if (spin_until(pred, spin)) return;
  while (!pred()) std::this_thread::yield();
}

class Pool {
 public:
  // Runs fn(ctx, part, parts) for every part in [0, parts), on the caller and on up to
  // threads - 1 helpers. Rethrows the first exception a part threw, after all parts ran.
  void run(int parts, int threads, void (*fn)(void*, int, int), void* ctx) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {  // another thread's region is running: this one runs here
      run_serial(parts, fn, ctx);
      return;
    }
    start_helpers(threads - 1);
    wait_until([&] { return inside_.load() == 0; }, tuning::kSpinBeforeYield);
    fn_ = fn;
    ctx_ = ctx;
    parts_ = parts;
    next_.store(0);
    done_.store(0);
    error_ = nullptr;
    failed_.store(false);
    seats_.store(threads - 1);
    admitted_.store(threads - 1, std::memory_order_relaxed);
    open_.store(true);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      epoch_.fetch_add(1);
    }
    wake_.notify_all();
    claim_parts();
    open_.store(false);
    wait_until([&] { return done_.load(std::memory_order_acquire) == parts_; },
               tuning::kSpinBeforeYield);
    if (error_) {
      std::exception_ptr error;
      error.swap(error_);  // the pool keeps no reference: the exception dies where it is caught
      std::rethrow_exception(error);
    }
  }

  static void run_serial(int parts, void (*fn)(void*, int, int), void* ctx) {
    std::exception_ptr error;
    {
      InRegion in_region;
      for (int p = 0; p < parts; ++p) {
        try {
          fn(ctx, p, parts);
        } catch (...) {
          if (!error) error = std::current_exception();
        }
      }
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  void claim_parts() {
    InRegion in_region;
    for (int p; (p = next_.fetch_add(1)) < parts_;) {
      try {
        fn_(ctx_, p, parts_);
      } catch (...) {
        if (!failed_.exchange(true)) error_ = std::current_exception();
      }
      done_.fetch_add(1, std::memory_order_release);
    }
  }

  void start_helpers(int wanted) {
    while (helpers_ < wanted) {
      try {
        std::thread(&Pool::helper_loop, this, helpers_).detach();  // lives as long as the process
      } catch (const std::system_error&) {
        return;  // no thread to be had (EAGAIN): the caller runs the parts no helper takes
      }
      ++helpers_;
    }
  }

  // Helper `index` (0-based). One beyond what the last region admitted (after the thread count
  // was lowered) sleeps at once instead of spinning for the next region.
  void helper_loop(int index) {
    uint64_t seen = epoch_.load();
    for (;;) {
      // A region often follows soon after the last (the next layer): spin briefly first.
      wait_until_new_epoch(seen, index < admitted_.load(std::memory_order_relaxed));
      seen = epoch_.load();
      inside_.fetch_add(1);
      if (open_.load() && seats_.fetch_sub(1) > 0) claim_parts();
      inside_.fetch_sub(1);
    }
  }

  void wait_until_new_epoch(uint64_t seen, bool spin) {
    if (spin && spin_until([&] { return epoch_.load(std::memory_order_relaxed) != seen; },
                           tuning::kHelperSpin)) {
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return epoch_.load() != seen; });
  }

  std::mutex busy_;  // held by the thread whose region is running
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> epoch_{0};
  std::atomic<bool> open_{false};
  std::atomic<int> inside_{0};
  std::atomic<int> seats_{0};
  std::atomic<int> admitted_{0};  // helpers the last region admitted (seats_ before any took one)
  std::atomic<int> next_{0};
  std::atomic<int> done_{0};
  std::atomic<bool> failed_{false};
  void (*fn_)(void*, int, int) = nullptr;
  void* ctx_ = nullptr;
  int parts_ = 0;
  std::exception_ptr error_;
  int helpers_ = 0;  // only changed by the caller holding busy_
};

// The process's pool, made on first use. A child of fork() has none of its parent's threads,
// so the child handler drops the parent's pool (its memory is left as it is, never used) and
// the child's first region starts a new one.
std::atomic<Pool*> g_pool{nullptr};

Pool& pool() {
  Pool* p = g_pool.load();
  if (p == nullptr) {
    Pool* fresh = new Pool;
    if (g_pool.compare_exchange_strong(p, fresh)) {
      p = fresh;
    } else {
      delete fresh;
    }
  }
  return *p;
}

void on_fork_child() { g_pool.store(nullptr); }

struct ForkHandlerInstaller {
  ForkHandlerInstaller() { pthread_atfork(nullptr, nullptr, &on_fork_child); }
} g_fork_handler_installer;

}  // namespace

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
  static const int default_n = default_threads();
  return default_n;
}

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  }
  g_num_threads.store(n, std::memory_order_relaxed);
}

double get_min_thread_work() { return g_min_thread_work.load(std::memory_order_relaxed); }

void set_min_thread_work(double ns) {
  if (!(ns >= 0)) {
    throw std::invalid_argument("set_min_thread_work: ns must be >= 0, got " + std::to_string(ns));
  }
  g_min_thread_work.store(ns, std::memory_order_relaxed);
}

int threads_for(int64_t items, Work work) {
  if (items <= 1 || t_in_region) return 1;
  int64_t n = std::min<int64_t>(get_num_threads(), items);
  const double ns = work.flops / tuning::kFlopsPerNs + work.bytes / tuning::kBytesPerNs;
  const double min_ns = get_min_thread_work();
  if (min_ns > 0 && ns < static_cast<double>(n) * min_ns) {
    n = std::max<int64_t>(1, static_cast<int64_t>(ns / min_ns));
  }
  return static_cast<int>(n);
}

namespace detail {

void run_region(int parts, void (*fn)(void*, int, int), void* ctx) {
  const int threads = std::min(parts, get_num_threads());
  if (threads <= 1 || t_in_region) {
    Pool::run_serial(parts, fn, ctx);
  } else {
    pool().run(parts, threads, fn, ctx);
  }
}

}  // namespace detail

}  // namespace fastcnn
