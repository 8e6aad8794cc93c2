// fma_peak: the timing and threads around the per-ISA chain kernels (see peak.h).
#include "peak/peak.h"

#include <chrono>
#include <stdexcept>
#include <vector>

#include "common/parallel.h"

namespace fastcnn {

const FmaChains& fma_chains(Isa isa) {
  switch (isa) {
    case Isa::avx512:
#if defined(FASTCNN_HAVE_AVX512)
      return f32_fma_chains__avx512;
#endif
      [[fallthrough]];
    case Isa::avx2:
#if defined(FASTCNN_HAVE_AVX2)
      return f32_fma_chains__avx2;
#endif
      [[fallthrough]];
    default:
      return f32_fma_chains__generic;
  }
}

namespace {

struct Run {
  double seconds;
  int parts;
  float checksum;
};

// One run: `rounds` rounds of the chains in each of get_num_threads() parts, at once.
Run timed_run(const FmaChains& k, int64_t rounds) {
  const int threads = get_num_threads();
  // The estimate only has to say "worth every thread": rounds * 2 * chains * lanes per part.
  const double flops = 2.0 * static_cast<double>(rounds) * k.chains * k.lanes * threads;
  const int parts = threads_for(threads, Work{flops, 0});
  std::vector<float> sums(static_cast<size_t>(parts));
  const auto t0 = std::chrono::steady_clock::now();
  parallel_run(parts, [&](int part, int) {
    // a < 1 and b small: every chain converges to b / (1 - a), never overflows nor goes
    // subnormal; the part number varies b so no two parts compute the same values.
    sums[static_cast<size_t>(part)] = k.run(rounds, 0.999f, 1e-3f * static_cast<float>(part + 1));
  });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float checksum = 0;
  for (float s : sums) checksum += s;
  return {seconds, parts, checksum};
}

}  // namespace

FmaPeak fma_peak(Isa isa, double min_seconds, int repeat) {
  if (!(min_seconds > 0) || repeat < 1) {
    throw std::invalid_argument("fma_peak: min_seconds must be > 0 and repeat >= 1");
  }
  const FmaChains& k = fma_chains(isa);
  int64_t rounds = 1 << 12;
  while (timed_run(k, rounds).seconds < min_seconds && rounds < (int64_t{1} << 40)) rounds *= 2;
  FmaPeak best;
  best.chains = k.chains;
  best.lanes = k.lanes;
  for (int i = 0; i < repeat; ++i) {
    const Run r = timed_run(k, rounds);
    const double flops = 2.0 * static_cast<double>(rounds) * k.chains * k.lanes * r.parts;
    const double gflops = flops / r.seconds * 1e-9;
    if (gflops > best.gflops) {
      best.gflops = gflops;
      best.seconds = r.seconds;
      best.flops = flops;
      best.threads = r.parts;
      best.checksum = r.checksum;
    }
  }
  return best;
}

}  // namespace fastcnn
