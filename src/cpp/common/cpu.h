// CPU feature detection and the instruction-set choice that selects micro-kernels.
// Detection runs once; the choice can be narrowed (never widened past what the CPU has) with
// FASTCNN_ISA=generic|avx2|avx512 or set_isa(), so tests can exercise every code path.
#pragma once

#include <string>
#include <vector>

namespace fastcnn {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool sse42 = false;
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
};

const CpuFeatures& cpu_features();

// ISAs this build has kernels for AND this CPU can run, narrowest first.
std::vector<Isa> available_isas();
const char* isa_name(Isa isa);
// Throws std::invalid_argument for an unknown name or an ISA this machine/build can't run.
Isa parse_isa(const std::string& name);

// The ISA whose kernels are in use. Initialised from FASTCNN_ISA (or the best available).
Isa active_isa();
void set_active_isa(Isa isa);

}  // namespace fastcnn
