// CPU feature detection (via the compiler's cpuid wrapper, which also checks that the OS saves
// the wide registers), the CPU's identity and caches (raw CPUID, then sysfs, then defaults),
// and the process-wide active ISA.
#include "common/cpu.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define FASTCNN_X86 1
#endif

namespace fastcnn {

namespace {

uint32_t bits(uint32_t v, int lo, int hi) { return (v >> lo) & ((1u << (hi - lo + 1)) - 1u); }

#if defined(FASTCNN_X86)
struct Regs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

// CPUID leaf/subleaf; all zero for a leaf above the CPU's maximum of its range.
Regs cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  Regs r;
  if (__get_cpuid_max(leaf & 0x80000000u, nullptr) < leaf) return r;
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
  return r;
}

std::vector<CacheDescriptor> cpuid_caches(const std::string& vendor) {
  uint32_t leaf = 0;
  if (vendor == "GenuineIntel") {
    leaf = 4;
  } else if ((vendor == "AuthenticAMD" || vendor == "HygonGenuine") &&
             (cpuid(0x80000001u).ecx & (1u << 22)) != 0) {  // TOPOEXT: leaf 0x8000001D valid
    leaf = 0x8000001Du;
  }
  std::vector<CacheDescriptor> out;
  for (uint32_t i = 0; leaf != 0 && i < 16; ++i) {
    const Regs r = cpuid(leaf, i);
    const CacheDescriptor d = decode_cache_leaf(r.eax, r.ebx, r.ecx, r.edx);
    if (d.type == CacheType::none) break;
    out.push_back(d);
  }
  return out;
}
#endif

// "32K", "1024K", "32M" (sysfs's cache size) in bytes; 0 if unparsable.
int64_t parse_size_text(const std::string& text) {
  std::size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    return 0;
  }
  const char unit = used < text.size() ? text[used] : ' ';
  if (unit == 'K') return v << 10;
  if (unit == 'M') return v << 20;
  if (unit == 'G') return v << 30;
  return v;
}

// CPUs in a sysfs list such as "0-1,4,6-7"; 0 if unparsable.
int count_cpu_list(const std::string& text) {
  int count = 0;
  std::size_t pos = 0;
  while (pos < text.size() && text[pos] != '\n') {
    std::size_t used = 0;
    int lo = 0, hi = 0;
    try {
      lo = hi = std::stoi(text.substr(pos), &used);
      pos += used;
      if (pos < text.size() && text[pos] == '-') {
        hi = std::stoi(text.substr(pos + 1), &used);
        pos += 1 + used;
      }
    } catch (const std::exception&) {
      return 0;
    }
    count += hi - lo + 1;
    if (pos < text.size() && text[pos] == ',') ++pos;
  }
  return count;
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

CpuCaches with_source(CpuCaches caches, const char* source) {
  caches.source = source;
  return caches;
}

CpuInfo detect_info() {
  CpuInfo info;
  CpuCaches caches;
#if defined(FASTCNN_X86)
  const Regs r0 = cpuid(0);
  char vendor[13] = {};
  for (int i = 0; i < 4; ++i) {
    vendor[i] = static_cast<char>(r0.ebx >> (8 * i));
    vendor[4 + i] = static_cast<char>(r0.edx >> (8 * i));
    vendor[8 + i] = static_cast<char>(r0.ecx >> (8 * i));
  }
  info.vendor = vendor;
  if (r0.eax >= 1) decode_family_model(cpuid(1).eax, info.family, info.model);
  fill_missing_levels(caches,
                      with_source(caches_from_descriptors(cpuid_caches(info.vendor)), "cpuid"));
#endif
  const std::vector<CacheDescriptor> sysfs =
      sysfs_cache_descriptors("/sys/devices/system/cpu/cpu0/cache");
  fill_missing_levels(caches, with_source(caches_from_descriptors(sysfs), "sysfs"));
  fill_missing_levels(caches, default_caches());
  info.caches = caches;
  info.microarch = classify_microarch(info.vendor, info.family, cpu_features());
  return info;
}

CpuFeatures detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.sse42 = __builtin_cpu_supports("sse4.2");
  f.avx = __builtin_cpu_supports("avx");
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  const Regs r7 = cpuid(7);
  f.avx512fp16 = (r7.edx & (1u << 23)) != 0;
  f.amx_tile = (r7.edx & (1u << 24)) != 0;
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

CacheDescriptor decode_cache_leaf(uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx) {
  (void)edx;  // inclusiveness and indexing flags: not needed for blocking
  CacheDescriptor d;
  const uint32_t type = bits(eax, 0, 4);
  if (type < 1 || type > 3) return d;  // 0: no more caches; 4..31 reserved
  d.type = static_cast<CacheType>(type);
  d.level = static_cast<int>(bits(eax, 5, 7));
  d.sharing = static_cast<int>(bits(eax, 14, 25)) + 1;
  d.line = static_cast<int>(bits(ebx, 0, 11)) + 1;
  const int64_t partitions = static_cast<int64_t>(bits(ebx, 12, 21)) + 1;
  d.ways = static_cast<int>(bits(ebx, 22, 31)) + 1;
  const int64_t sets = static_cast<int64_t>(ecx) + 1;
  d.size = int64_t{d.ways} * partitions * d.line * sets;
  return d;
}

std::vector<CacheDescriptor> sysfs_cache_descriptors(const std::string& dir) {
  std::vector<CacheDescriptor> out;
  for (int i = 0; i < 16; ++i) {
    const std::string index = dir + "/index" + std::to_string(i) + "/";
    const std::string level = read_line(index + "level"), type = read_line(index + "type");
    if (level.empty()) break;
    CacheDescriptor d;
    d.level = std::atoi(level.c_str());
    d.type = type == "Data"          ? CacheType::data
             : type == "Instruction" ? CacheType::instruction
             : type == "Unified"     ? CacheType::unified
                                     : CacheType::none;
    d.size = parse_size_text(read_line(index + "size"));
    d.line = std::atoi(read_line(index + "coherency_line_size").c_str());
    d.ways = std::atoi(read_line(index + "ways_of_associativity").c_str());
    d.sharing = count_cpu_list(read_line(index + "shared_cpu_list"));
    if (d.type != CacheType::none && d.size > 0) out.push_back(d);
  }
  return out;
}

CpuCaches default_caches() {
  CpuCaches c;
  c.l1d = {32 << 10, 64, 8, 1};
  c.l2 = {1 << 20, 64, 16, 1};
  c.l3 = {2 << 20, 64, 16, 1};
  c.source = "default";
  return c;
}

CpuCaches caches_from_descriptors(const std::vector<CacheDescriptor>& descriptors) {
  CpuCaches c;
  for (const CacheDescriptor& d : descriptors) {
    if (d.type == CacheType::none || d.type == CacheType::instruction || d.size <= 0) continue;
    CacheLevel* level = d.level == 1   ? &c.l1d
                        : d.level == 2 ? &c.l2
                        : d.level == 3 ? &c.l3
                                       : nullptr;
    if (level == nullptr || level->size != 0) continue;
    *level = {d.size, d.line, d.ways, d.sharing};
  }
  return c;
}

void fill_missing_levels(CpuCaches& caches, const CpuCaches& from) {
  bool filled = false;
  for (auto [to, src] : {std::pair{&caches.l1d, &from.l1d}, std::pair{&caches.l2, &from.l2},
                         std::pair{&caches.l3, &from.l3}}) {
    if (to->size == 0 && src->size != 0) {
      *to = *src;
      filled = true;
    }
  }
  if (filled) caches.source += (caches.source.empty() ? "" : "+") + from.source;
}

const char* microarch_name(Microarch arch) {
  switch (arch) {
    case Microarch::generic:
      return "generic";
    case Microarch::haswell:
      return "haswell";
    case Microarch::skx:
      return "skx";
    case Microarch::spr:
      return "spr";
    case Microarch::zen3:
      return "zen3";
    case Microarch::zen4:
      return "zen4";
    case Microarch::zen5:
      return "zen5";
  }
  return "unknown";
}

Microarch classify_microarch(const std::string& vendor, int family, const CpuFeatures& f) {
  const bool avx2 = f.avx2 && f.fma;
  if (vendor == "AuthenticAMD" || vendor == "HygonGenuine") {
    if (family == 0x1A && f.avx512f) return Microarch::zen5;
    if (family == 0x19 && f.avx512f) return Microarch::zen4;
    if (family >= 0x17 && family <= 0x19 && avx2) return Microarch::zen3;
  } else if (vendor == "GenuineIntel" && family == 6) {
    if (f.avx512f) return f.amx_tile || f.avx512fp16 ? Microarch::spr : Microarch::skx;
    if (avx2) return Microarch::haswell;
  }
  return Microarch::generic;
}

void decode_family_model(uint32_t eax, int& family, int& model) {
  const int base_family = static_cast<int>(bits(eax, 8, 11));
  family = base_family == 0xF ? base_family + static_cast<int>(bits(eax, 20, 27)) : base_family;
  model = static_cast<int>(bits(eax, 4, 7));
  if (base_family == 6 || base_family == 0xF) model |= static_cast<int>(bits(eax, 16, 19)) << 4;
}

const CpuInfo& cpu_info() {
  static const CpuInfo info = detect_info();
  return info;
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
