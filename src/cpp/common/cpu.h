// CPU feature detection, the CPU's identity (vendor, family, model, microarchitecture) and
// cache sizes, and the instruction-set choice that selects micro-kernels. Detection runs once;
// the ISA can be narrowed (never widened past what the CPU has) with
// FASTCNN_ISA=generic|avx2|avx512 or set_isa(), so tests can exercise every code path.
// What the kernels do with the microarchitecture and the caches is gemm/gemm.cpp's business.
#pragma once

#include <cstdint>
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
  // Only to tell Sapphire Rapids-class cores from earlier AVX-512 ones (no kernel uses them).
  bool avx512fp16 = false;
  bool amx_tile = false;
};

const CpuFeatures& cpu_features();

// ---- Caches -------------------------------------------------------------------------------

enum class CacheType { none = 0, data = 1, instruction = 2, unified = 3 };

// One cache as a CPUID deterministic-cache-parameters subleaf describes it (Intel leaf 4 and
// AMD leaf 0x8000001D share the layout). size = ways * partitions * line * sets, in bytes;
// sharing = the most logical processors that may share it (CPUID's count, not the online one).
struct CacheDescriptor {
  int level = 0;
  CacheType type = CacheType::none;
  int64_t size = 0;
  int line = 0;
  int ways = 0;
  int sharing = 0;
};

// Decodes one subleaf's registers; type none ends the list.
CacheDescriptor decode_cache_leaf(uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx);

// The caches Linux describes under `dir` (/sys/devices/system/cpu/cpu0/cache: index0, index1,
// ... with level, type, size "32K", ways_of_associativity, coherency_line_size and
// shared_cpu_list "0-1"); empty where there is no such directory.
std::vector<CacheDescriptor> sysfs_cache_descriptors(const std::string& dir);

struct CacheLevel {
  int64_t size = 0;  // bytes; 0: not found
  int line = 0;      // bytes
  int ways = 0;
  int sharing = 0;  // logical processors sharing it
};

// The caches the GEMM blocking is modelled on, and where their sizes came from: "cpuid",
// "sysfs" (/sys/devices/system/cpu/cpu0/cache) or "default" (kDefaultCaches, a level neither
// reported).
struct CpuCaches {
  CacheLevel l1d, l2, l3;
  std::string source;
};

// Used for a level neither CPUID nor sysfs reports: 32 KiB 8-way L1d, 1 MiB 16-way L2, 2 MiB
// 16-way L3 per core, 64-byte lines (a small modern x86 core; an assumption, not a reading).
CpuCaches default_caches();

// L1 data (else unified), L2 and L3 from a list of descriptors (instruction caches and other
// levels skipped; the first of a level wins); a level not in the list stays zero.
CpuCaches caches_from_descriptors(const std::vector<CacheDescriptor>& descriptors);

// Fills every zero level of `caches` from `from`; if any was filled, appends from.source to
// caches.source ("cpuid+default": some levels read, the others assumed).
void fill_missing_levels(CpuCaches& caches, const CpuCaches& from);

// ---- Identity -----------------------------------------------------------------------------

// The microarchitecture classes gemm/gemm.cpp keeps configurations for:
//  zen5:    AMD family 0x1A with AVX-512 (full 512-bit datapaths; family 0x1A without AVX-512
//           is generic, not measured);
//  zen4:    AMD family 0x19 with AVX-512 (512-bit instructions run as two 256-bit halves);
//  zen3:    other AMD families 0x17 (Zen 1, 2) and 0x19 (Zen 3) with AVX2 and FMA;
//  spr:     Intel family 6 with AVX-512 and AMX or AVX512-FP16 (Sapphire Rapids and later);
//  skx:     other Intel family 6 with AVX-512 (Skylake-SP .. Ice Lake: two 512-bit FMA ports on
//           the server parts);
//  haswell: Intel family 6 with AVX2 and FMA, no AVX-512 (Haswell .. Alder Lake);
//  generic: anything else.
enum class Microarch { generic = 0, haswell, skx, spr, zen3, zen4, zen5 };
const char* microarch_name(Microarch arch);
// Vendor, family and features decide (the model number is not needed for these classes).
Microarch classify_microarch(const std::string& vendor, int family, const CpuFeatures& features);

// Family and model from CPUID leaf 1's EAX, with the extended fields folded in as both
// vendors define them (extended family added when the base family is 0xF; extended model
// prepended when the base family is 6 or 0xF).
void decode_family_model(uint32_t eax, int& family, int& model);

struct CpuInfo {
  std::string vendor;  // CPUID leaf 0: "GenuineIntel", "AuthenticAMD", ...; "" off x86
  int family = 0, model = 0;
  Microarch microarch = Microarch::generic;
  CpuCaches caches;
};

// Read once (CPUID, then sysfs, then defaults) and never changed: the same CPU always gets
// the same answer, so the blocking chosen from it is fixed for the process.
const CpuInfo& cpu_info();

// ISAs this build has kernels for AND this CPU can run, narrowest first.
std::vector<Isa> available_isas();
const char* isa_name(Isa isa);
// Throws std::invalid_argument for an unknown name or an ISA this machine/build can't run.
Isa parse_isa(const std::string& name);

// The ISA whose kernels are in use. Initialised from FASTCNN_ISA (or the best available).
Isa active_isa();
void set_active_isa(Isa isa);

}  // namespace fastcnn
