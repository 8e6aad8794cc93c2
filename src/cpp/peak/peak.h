// The float32 multiply-add peak of this CPU for one ISA's kernels, measured rather than taken
// from a clock the VM does not tell: every thread runs independent multiply-add chains on
// registers, with no loads or stores, so the rate is what the FMA units deliver at the clock
// they run at. It is the roofline `fastcnn bench` compares the convolutions with; it leaves out
// everything a real kernel also pays for (loads, packing, transforms), so no kernel reaches it.
#pragma once

#include <cstdint>

#include "common/cpu.h"

namespace fastcnn {

// One ISA's chain kernel (kernels/fma_chains__<isa>.cpp): run(rounds, a, b) updates `chains`
// independent accumulators of `lanes` floats, acc = acc * a + b, `rounds` times each (as one
// fused multiply-add where the ISA has one), and returns a value that depends on every chain
// so that nothing is optimised away. Each round is 2 * chains * lanes floating-point operations.
struct FmaChains {
  float (*run)(int64_t rounds, float a, float b);
  int chains;
  int lanes;
};

extern const FmaChains f32_fma_chains__generic;
extern const FmaChains f32_fma_chains__avx2;
extern const FmaChains f32_fma_chains__avx512;

// The chain kernel of `isa` (which this build and CPU must run: see parse_isa).
const FmaChains& fma_chains(Isa isa);

struct FmaPeak {
  double gflops = 0;   // operations per second / 1e9, all threads together, best timed run
  double seconds = 0;  // that run's wall time
  double flops = 0;    // the operations it counted
  int threads = 0;     // parts that ran chains at once in it (the thread count, normally)
  int chains = 0, lanes = 0;
  float checksum = 0;  // the chains' combined value (finite: a is below 1, b small)
};

// Runs ISA `isa`'s chains on every thread (one part per thread, parallel_run): the rounds per
// part are doubled until one run lasts at least min_seconds, then `repeat` runs are timed and
// the fastest kept (a run that waited for a descheduled thread is slower, never faster).
// min_seconds > 0 and repeat >= 1, else std::invalid_argument.
FmaPeak fma_peak(Isa isa, double min_seconds, int repeat);

}  // namespace fastcnn
