// Stress test of fastcnn's thread pool (src/cpp/common/parallel.cpp), built and run by
// tests/test_pool_stress.py: regions back to back from several calling threads, with random
// part counts and lengths, parts that throw, and nested regions inside parts. Every region
// must run each of its parts exactly once, publish the parts' plain writes to the caller,
// rethrow a part's exception, and leave the in-region state as it found it.
// Usage: pool_stress SECONDS CALLERS   (prints "ok REGIONS" or the failures, exit 1)
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "common/parallel.h"

namespace {

std::atomic<long> g_failures{0};

void fail(const char* what, long region) {
  if (g_failures.fetch_add(1) < 10) std::fprintf(stderr, "region %ld: %s\n", region, what);
}

double spin(int iters, double x) {
  for (int i = 0; i < iters; ++i) x = x * 1.0000001 + 1e-9;
  return x;
}

void one_region(std::mt19937& rng, long region) {
  const int parts = 2 + static_cast<int>(rng() % 31);
  const int iters = rng() % 8 == 0 ? static_cast<int>(rng() % 20000) : static_cast<int>(rng() % 50);
  const int thrower = rng() % 16 == 0 ? static_cast<int>(rng() % parts) : -1;
  const bool nested = rng() % 4 == 0;
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(parts));
  for (auto& r : runs) r.store(0);
  std::vector<double> out(static_cast<std::size_t>(parts), -1.0);  // plain writes by the parts
  bool threw = false;
  try {
    fastcnn::parallel_run(parts, [&](int part, int n) {
      if (n != parts) fail("wrong part count", region);
      runs[static_cast<std::size_t>(part)].fetch_add(1);
      if (nested) {
        // Two regions inside a part: both run on this thread, the second as the first did.
        for (int k = 0; k < 2; ++k) {
          std::atomic<int> inner{0};
          fastcnn::parallel_for(8, fastcnn::Work{1e9, 0}, [&](int64_t b, int64_t e) {
            inner.fetch_add(static_cast<int>(e - b));
          });
          if (inner.load() != 8) fail("nested region lost items", region);
        }
      }
      out[static_cast<std::size_t>(part)] = spin(iters, part);
      if (part == thrower) throw std::runtime_error("part failed");
    });
  } catch (const std::runtime_error&) {
    threw = true;
  }
  if (threw != (thrower >= 0)) fail("exception not rethrown exactly when a part threw", region);
  for (int p = 0; p < parts; ++p) {
    if (runs[static_cast<std::size_t>(p)].load() != 1) fail("a part ran other than once", region);
    if (out[static_cast<std::size_t>(p)] != spin(iters, p)) fail("a part's write was lost", region);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const int callers = argc > 2 ? std::atoi(argv[2]) : 3;
  fastcnn::set_min_thread_work(0);
  std::atomic<long> regions{0};
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c) * 7919u + 1u);
      while (std::chrono::steady_clock::now() < until) {
        if (c == 0 && rng() % 64 == 0) fastcnn::set_num_threads(2 + static_cast<int>(rng() % 3));
        one_region(rng, regions.fetch_add(1));
      }
    });
  }
  for (auto& t : threads) t.join();
  if (g_failures.load() != 0) {
    std::fprintf(stderr, "%ld failures in %ld regions\n", g_failures.load(), regions.load());
    return 1;
  }
  std::printf("ok %ld\n", regions.load());
  return 0;
}
