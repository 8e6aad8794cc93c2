// CPU feature detection (via the compiler's cpuid wrapper, which also checks that the OS saves
// the wide registers) and the process-wide active ISA.
#include "common/cpu.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

namespace fastcnn {

namespace {

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.sse42 = __builtin_cpu_supports("sse4.2");
  f.avx = __builtin_cpu_supports("avx");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
#endif
  return f;
}

bool can_run(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::generic:
      return true;
    case Isa::avx2:
#if defined(FASTCNN_HAVE_AVX2)
      return f.avx2 && f.fma;
#else
      return false;
#endif
    case Isa::avx512:
#if defined(FASTCNN_HAVE_AVX512)
      return f.avx512f && f.fma;
#else
      return false;
#endif
  }
  return false;
}

Isa initial_isa() {
  if (const char* env = std::getenv("FASTCNN_ISA"); env != nullptr && *env != '\0') {
    return parse_isa(env);  // an impossible request is an error at import, not a silent fallback
  }
  Isa best = Isa::generic;
  for (Isa isa : available_isas()) best = isa;
  return best;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_isa())};
  return slot;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512}) {
    if (can_run(isa)) out.push_back(isa);
  }
  return out;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::generic:
      return "generic";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512}) {
    if (name == isa_name(isa)) {
      if (!can_run(isa)) {
        throw std::invalid_argument("FASTCNN_ISA/set_isa: '" + name +
                                    "' is not available on this CPU or in this build");
      }
      return isa;
    }
  }
  throw std::invalid_argument("FASTCNN_ISA/set_isa: unknown ISA '" + name +
                              "' (expected one of: generic, avx2, avx512)");
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  if (!can_run(isa)) {
    throw std::invalid_argument(std::string("set_isa: '") + isa_name(isa) +
                                "' is not available on this CPU or in this build");
  }
  active_slot().store(static_cast<int>(isa), std::memory_order_relaxed);
}

}  // namespace fastcnn
