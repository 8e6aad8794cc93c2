// GEMM configurations per microarchitecture x ISA x dtype (micro-kernel + cache blocking) and
// the strided-matrix entry point.
//
// The micro-kernel of each ISA and dtype is the same on every microarchitecture: the 12x32
// AVX-512 tile keeps 24 accumulators in flight, enough for the 2 FMA ports x 4 cycles of
// latency of an Intel server core and for Zen 4 (whose 512-bit FMAs run as two 256-bit
// halves); 6x16 is the AVX2 shape BLIS uses on Haswell and Zen. What differs per CPU is the
// blocking, chosen once at start-up from cpu_info() (common/cpu.h) and never from the thread
// count, so a given CPU always blocks K the same way and results stay bitwise identical for
// any number of threads:
//  - measured (kMeasured): Zen 4, and the float32 AVX-512 tiles of Zen 5 and Sapphire Rapids,
//    where the numbers were tuned (docs/performance.md);
//  - modelled (model_gemm_blocking) from the cache sizes the CPU reports, everywhere else.
#include "gemm/gemm.h"

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/tuning.h"
#include "gemm/gemm_driver.h"
#include "gemm/pack.h"

namespace fastcnn {

namespace {

// {packed-A, strided-A, indirect-B, indirect-A and strided-AB kernels, MR, NR, name} for
// <dt>_gemm_ukernel_<tile>[_strided_a|_indirect_b|_indirect_a|_strided_ab]__<isa>; the blocking
// is filled in at start-up (configs()).
#define FASTCNN_GEMM_TILE(dt, tile, isa, mr, nr) \
  {dt##_gemm_ukernel_##tile##__##isa,            \
   dt##_gemm_ukernel_##tile##_strided_a__##isa,  \
   dt##_gemm_ukernel_##tile##_indirect_b__##isa, \
   dt##_gemm_ukernel_##tile##_indirect_a__##isa, \
   dt##_gemm_ukernel_##tile##_strided_ab__##isa, \
   mr,                                           \
   nr,                                           \
   0,                                            \
   0,                                            \
   0,                                            \
   #dt "_gemm_ukernel_" #tile "__" #isa}

// Blocking measured on Zen 4 (AMD EPYC family 0x19 model 0x11: 32 KiB 8-way L1d, 1 MiB L2,
// 32 MiB L3; docs/performance.md), per tile. kc = 256 is more than the L1 model allows
// for the wide tiles (a 256 x 32 float B micro-panel alone is 32 KiB), yet measured fastest:
// Zen 4's L2 feeds the streamed A micro-panels fast enough. The 4080 / 2040 of the AVX2 tiles
// are multiples of their NR (16, 8).
// Sapphire Rapids class (Intel family 6 model 0xA7 as KVM reports it, AMX and AVX512-FP16;
// 48 KiB 12-way L1d, 2 MiB L2): the float32 AVX-512 tiles ranked by benchmarks/tune_gemm.py
// (docs/performance.md), all three set together as one candidate. 144, 256, 4096 ran the GEMM
// shapes 4-7 % faster (geometric mean of two runs) than the model's 1020, 256, 8192; KC 384 or
// MC 240 were level with it. The float64 and AVX2 tiles keep the model's numbers (not measured).
// Zen 5 (AMD EPYC family 0x1A model 2, full 512-bit datapaths; 48 KiB 12-way L1d, 1 MiB L2,
// 32 MiB L3): the float32 AVX-512 tiles ranked the same way, two runs. 144, 384, 4096 ran the
// GEMM shapes 15-18 % faster (geometric mean) and the DeepConvNet step 17-19 % faster than the
// model's 504, 256, 8192; KC 384 won at every MC tried (96-504), NC 4096 beat 8192. The
// float64 and AVX2 tiles keep the model's numbers (not measured).
struct MeasuredBlocking {
  Microarch arch;
  const char* kernel;
  int64_t mc, kc, nc;
};
constexpr MeasuredBlocking kMeasured[] = {
    {Microarch::zen4, "f32_gemm_ukernel_4x8__generic", 128, 256, 4096},
    {Microarch::zen4, "f64_gemm_ukernel_4x4__generic", 96, 256, 4096},
    {Microarch::zen4, "f32_gemm_ukernel_6x16__avx2", 144, 256, 4080},
    {Microarch::zen4, "f64_gemm_ukernel_6x8__avx2", 96, 256, 2040},
    {Microarch::zen4, "f32_gemm_ukernel_12x32__avx512", 144, 256, 4096},
    {Microarch::zen4, "f64_gemm_ukernel_12x16__avx512", 96, 256, 2048},
    {Microarch::zen4, "f32_gemm_ukernel_8x32__avx512", 128, 256, 4096},
    {Microarch::zen4, "f64_gemm_ukernel_8x16__avx512", 96, 256, 2048},
    {Microarch::zen4, "f32_gemm_ukernel_8x16__avx512", 128, 256, 4096},
    {Microarch::zen4, "f64_gemm_ukernel_8x8__avx512", 96, 256, 2048},
    {Microarch::spr, "f32_gemm_ukernel_12x32__avx512", 144, 256, 4096},
    {Microarch::spr, "f32_gemm_ukernel_8x32__avx512", 144, 256, 4096},
    {Microarch::spr, "f32_gemm_ukernel_8x16__avx512", 144, 256, 4096},
    {Microarch::zen5, "f32_gemm_ukernel_12x32__avx512", 144, 384, 4096},
    {Microarch::zen5, "f32_gemm_ukernel_8x32__avx512", 144, 384, 4096},
    {Microarch::zen5, "f32_gemm_ukernel_8x16__avx512", 144, 384, 4096},
};

// The tiles of one dtype: one per ISA, plus AVX-512's short (8-row) and narrow (one-vector)
// ones that gemm_config_for picks for products they fit better; null where this build has no
// kernels for the ISA.
template <class T>
struct Tiles {
  const GemmConfig<T>* generic;
  const GemmConfig<T>* avx2;
  const GemmConfig<T>* avx512;
  const GemmConfig<T>* avx512_short;
  const GemmConfig<T>* avx512_narrow;
};

constexpr GemmConfig<float> kF32Generic = FASTCNN_GEMM_TILE(f32, 4x8, generic, 4, 8);
constexpr GemmConfig<double> kF64Generic = FASTCNN_GEMM_TILE(f64, 4x4, generic, 4, 4);
#if defined(FASTCNN_HAVE_AVX2)
constexpr GemmConfig<float> kF32Avx2 = FASTCNN_GEMM_TILE(f32, 6x16, avx2, 6, 16);
constexpr GemmConfig<double> kF64Avx2 = FASTCNN_GEMM_TILE(f64, 6x8, avx2, 6, 8);
#define FASTCNN_AVX2_TILE(cfg) &(cfg)
#else
#define FASTCNN_AVX2_TILE(cfg) nullptr
#endif
#if defined(FASTCNN_HAVE_AVX512)
constexpr GemmConfig<float> kF32Avx512 = FASTCNN_GEMM_TILE(f32, 12x32, avx512, 12, 32);
constexpr GemmConfig<double> kF64Avx512 = FASTCNN_GEMM_TILE(f64, 12x16, avx512, 12, 16);
constexpr GemmConfig<float> kF32Avx512Short = FASTCNN_GEMM_TILE(f32, 8x32, avx512, 8, 32);
constexpr GemmConfig<double> kF64Avx512Short = FASTCNN_GEMM_TILE(f64, 8x16, avx512, 8, 16);
constexpr GemmConfig<float> kF32Avx512Narrow = FASTCNN_GEMM_TILE(f32, 8x16, avx512, 8, 16);
constexpr GemmConfig<double> kF64Avx512Narrow = FASTCNN_GEMM_TILE(f64, 8x8, avx512, 8, 8);
#define FASTCNN_AVX512_TILE(cfg) &(cfg)
#else
#define FASTCNN_AVX512_TILE(cfg) nullptr
#endif

constexpr Tiles<float> kF32Tiles{
    &kF32Generic, FASTCNN_AVX2_TILE(kF32Avx2), FASTCNN_AVX512_TILE(kF32Avx512),
    FASTCNN_AVX512_TILE(kF32Avx512Short), FASTCNN_AVX512_TILE(kF32Avx512Narrow)};
constexpr Tiles<double> kF64Tiles{
    &kF64Generic, FASTCNN_AVX2_TILE(kF64Avx2), FASTCNN_AVX512_TILE(kF64Avx512),
    FASTCNN_AVX512_TILE(kF64Avx512Short), FASTCNN_AVX512_TILE(kF64Avx512Narrow)};

template <class T>
constexpr bool nr_fits(const Tiles<T>& t) {
  for (const GemmConfig<T>* c : {t.generic, t.avx2, t.avx512, t.avx512_short, t.avx512_narrow}) {
    if (c != nullptr && c->nr > kMaxNr) return false;
  }
  return true;
}
static_assert(nr_fits(kF32Tiles) && nr_fits(kF64Tiles), "kMaxNr");

int64_t round_down(int64_t v, int64_t m) { return v / m * m; }

// FASTCNN_GEMM_BLOCKING: unset or "measured" uses the measured rows where the CPU has them;
// "modelled" (any case) sets them aside, so the tests can run the modelled blocking on a CPU
// that has measured numbers; "MC,KC,NC" sets every tile's blocking by hand, for tuning on a new
// CPU (MC and NC rounded down to the tile's MR and NR, at least one tile).
struct BlockingChoice {
  enum Kind { measured, modelled, fixed } kind = measured;
  int64_t mc = 0, kc = 0, nc = 0;
};

BlockingChoice blocking_choice() {
  const char* env = std::getenv("FASTCNN_GEMM_BLOCKING");
  std::string v = env != nullptr ? env : "";
  for (char& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (v.empty() || v == "measured") return {};
  if (v == "modelled") return {BlockingChoice::modelled};
  BlockingChoice c{BlockingChoice::fixed};
  int64_t* fields[] = {&c.mc, &c.kc, &c.nc};
  const int64_t limits[] = {1 << 16, 1 << 14, 1 << 16};
  size_t pos = 0;
  bool ok = true;
  for (int f = 0; f < 3 && ok; ++f) {
    const size_t end = f < 2 ? v.find(',', pos) : v.size();
    const std::string field = end == std::string::npos ? "" : v.substr(pos, end - pos);
    ok = !field.empty() && field.size() <= 6 &&
         field.find_first_not_of("0123456789") == std::string::npos;
    if (ok) *fields[f] = std::stoll(field);
    ok = ok && *fields[f] >= 1 && *fields[f] <= limits[f];
    pos = end == std::string::npos ? end : end + 1;
  }
  if (!ok) {
    throw std::invalid_argument("FASTCNN_GEMM_BLOCKING: unknown value '" + std::string(env) +
                                "' (expected measured, modelled or MC,KC,NC: three positive "
                                "integers, MC and NC at most 65536, KC at most 16384)");
  }
  return c;
}

// A tile with this CPU's blocking: set by hand, or the measured one if its microarchitecture
// has a row for the tile (and they are in use), else the model's.
template <class T>
GemmConfig<T> with_blocking(const GemmConfig<T>* tile, const CpuInfo& cpu,
                            const BlockingChoice& choice) {
  GemmConfig<T> cfg = *tile;
  if (choice.kind == BlockingChoice::fixed) {
    cfg.mc = std::max<int64_t>(cfg.mr, round_down(choice.mc, cfg.mr));
    cfg.kc = choice.kc;
    cfg.nc = std::max<int64_t>(cfg.nr, round_down(choice.nc, cfg.nr));
    cfg.blocking = "FASTCNN_GEMM_BLOCKING";
    return cfg;
  }
  for (const MeasuredBlocking& m : kMeasured) {
    if (choice.kind == BlockingChoice::measured && m.arch == cpu.microarch &&
        std::strcmp(m.kernel, cfg.name) == 0) {
      cfg.mc = m.mc;
      cfg.kc = m.kc;
      cfg.nc = m.nc;
      cfg.blocking = "measured";
      return cfg;
    }
  }
  const GemmBlocking b = model_gemm_blocking(cfg.mr, cfg.nr, sizeof(T), cpu.caches);
  cfg.mc = b.mc;
  cfg.kc = b.kc;
  cfg.nc = b.nc;
  return cfg;
}

// The configurations in use, one per tile, built once; an ISA this build has no kernels for
// falls back to generic.
template <class T>
struct Configs {
  GemmConfig<T> generic, avx2, avx512, avx512_short, avx512_narrow;
  bool have_avx2 = false, have_avx512 = false;
  const GemmConfig<T>& operator[](Isa isa) const {
    if (isa == Isa::avx512 && have_avx512) return avx512;
    if (isa == Isa::avx2 && have_avx2) return avx2;
    return generic;
  }
};

template <class T>
Configs<T> build_configs(const Tiles<T>& tiles, const CpuInfo& cpu) {
  Configs<T> c;
  const BlockingChoice choice = blocking_choice();  // the variable read once per dtype
  c.generic = with_blocking(tiles.generic, cpu, choice);
  c.have_avx2 = tiles.avx2 != nullptr;
  if (c.have_avx2) c.avx2 = with_blocking(tiles.avx2, cpu, choice);
  c.have_avx512 = tiles.avx512 != nullptr;
  if (c.have_avx512) {
    c.avx512 = with_blocking(tiles.avx512, cpu, choice);
    c.avx512_short = with_blocking(tiles.avx512_short, cpu, choice);
    c.avx512_narrow = with_blocking(tiles.avx512_narrow, cpu, choice);
  }
  return c;
}

template <class T>
const Configs<T>& configs() {
  if constexpr (std::is_same_v<T, float>) {
    static const Configs<float> c = build_configs(kF32Tiles, cpu_info());
    return c;
  } else {
    static const Configs<double> c = build_configs(kF64Tiles, cpu_info());
    return c;
  }
}

}  // namespace

// The analytical model of Low et al. (2016, "Analytical modeling is enough for
// high-performance BLIS"), simplified:
//  - kc: the kc x NR B micro-panel stays in L1 while kc x MR A micro-panels stream through it.
//    One way of L1 is left for C and the stack; of the others the A micro-panel gets
//    floor((W - 1) * MR / (MR + NR)) ways and B the rest, so kc = those ways' bytes /
//    (MR * elem). Rounded down to a multiple of 8, within [64, 1024].
//  - mc: the mc x kc packed A block fills about half of L2 (the rest holds the B micro-panels
//    and C passing through), rounded down to a multiple of MR.
//  - nc: the kc x nc packed B panel, one per thread, fills about half of this core's share of
//    L3 (its size over the logical processors sharing it), rounded down to a multiple of NR,
//    within [16 NR, 8192] so the A block is reused over at least 16 micro-panels.
GemmBlocking model_gemm_blocking(int mr, int nr, int elem_bytes, const CpuCaches& caches) {
  const CacheLevel& l1 = caches.l1d;
  const int64_t ways = std::max(l1.ways, 2);
  const int64_t way_bytes = l1.size / ways;
  const int64_t ways_a = (ways - 1) * mr / (mr + nr);
  int64_t kc = ways_a >= 1 ? ways_a * way_bytes / (int64_t{mr} * elem_bytes)
                           : (ways - 1) * way_bytes / (int64_t{mr + nr} * elem_bytes);
  kc = std::clamp<int64_t>(round_down(kc, 8), 64, 1024);
  const int64_t mc = std::max<int64_t>(mr, round_down(caches.l2.size / 2 / (kc * elem_bytes), mr));
  const int64_t l3_share = caches.l3.size / std::max(caches.l3.sharing, 1);
  const int64_t nc = std::clamp<int64_t>(round_down(l3_share / 2 / (kc * elem_bytes), nr),
                                         int64_t{16} * nr, round_down(8192, nr));
  return {mc, kc, nc};
}

template <>
const GemmConfig<float>& gemm_config<float>(Isa isa) {
  return configs<float>()[isa];
}

template <>
const GemmConfig<double>& gemm_config<double>(Isa isa) {
  return configs<double>()[isa];
}

template <class T>
const GemmConfig<T>& gemm_config() {
  return gemm_config<T>(active_isa());
}
template const GemmConfig<float>& gemm_config<float>();
template const GemmConfig<double>& gemm_config<double>();

// A product only NR/2 columns wide would waste half of each wide (AVX-512) micro-tile: such
// products use the one-vector AVX-512 tile (8 rows; on Zen 4 the AVX2 tile of the same width
// ran a convolution's weight gradient ~1.3x slower). A short product
// (M <= 96 rows) whose rows fill 8-row tiles better than 12-row ones uses the 8-row AVX-512
// tile: same vectors, fewer rows of padding (16 output channels: 16 rows, not 24). So does a
// product whose tiles may have at most max_mr rows.
template <class T>
const GemmConfig<T>& gemm_config_for(const GemmConfig<T>& active, int64_t M, int64_t N,
                                     int max_mr) {
  const Configs<T>& c = configs<T>();
  if (c.have_avx512 && &active == &c.avx512) {
    if (N <= c.avx512_narrow.nr) return c.avx512_narrow;
    if ((M <= 96 && round_up(M, 8) - M < round_up(M, active.mr) - M) || active.mr > max_mr) {
      return c.avx512_short;
    }
  }
  return active;
}

template const GemmConfig<float>& gemm_config_for<float>(const GemmConfig<float>&, int64_t, int64_t,
                                                         int);
template const GemmConfig<double>& gemm_config_for<double>(const GemmConfig<double>&, int64_t,
                                                           int64_t, int);

template <class T>
std::vector<const GemmConfig<T>*> gemm_configs(Isa isa) {
  const Configs<T>& c = configs<T>();
  std::vector<const GemmConfig<T>*> out{&c[isa]};
  if (c.have_avx512 && &c[isa] == &c.avx512) {
    out.push_back(&c.avx512_short);
    out.push_back(&c.avx512_narrow);
  }
  return out;
}
template std::vector<const GemmConfig<float>*> gemm_configs<float>(Isa);
template std::vector<const GemmConfig<double>*> gemm_configs<double>(Isa);

namespace {

// Small products: at most tuning::kSmallGemmMaxRowTiles rows of micro-tiles (a layer's
// forward or backward on a few images), where each element of B meets so few tiles that
// packing it would cost about as much as the product, and the scratch and K blocking of the
// general driver are pure overhead. Both operands are read in place, the K loop runs whole in
// registers, nothing is allocated:
//  - B with contiguous rows (x . W): the strided-AB micro-kernel reads B's rows through their
//    stride, masking the edge columns;
//  - B with contiguous columns (dy . W^T): C^T = B^T . A^T, B^T read in place by the strided-A
//    micro-kernel and A^T (K x M, at most one micro-panel) packed, into an N x M scratch that
//    is then transposed into C.
// Each element of C is computed by one micro-kernel call whatever the thread count (threads
// split the column tiles, or the tiles of C^T), so results do not depend on it. Returns false
// when the product is not small or B's layout fits neither form.
template <class T>
bool gemm_small(const GemmConfig<T>& active, int64_t M, int64_t N, int64_t K, T alpha,
                const StridedMatrix<T>& A, const StridedMatrix<T>& B, T beta, T* c, int64_t ldc) {
  if (M <= 0 || N <= 0 || K <= 0 || alpha == T(0)) return false;  // the driver's degenerate cases
  const Work work = gemm_work<T>(M, N, K);
  if (B.cs == 1 || N == 1) {
    const GemmConfig<T>& cfg = gemm_config_for(active, M, N);
    if (ceil_div(M, cfg.mr) > tuning::kSmallGemmMaxRowTiles) return false;
    parallel_for(ceil_div(N, cfg.nr), work, [&](int64_t t0, int64_t t1) {
      for (int64_t j0 = t0 * cfg.nr; j0 < std::min(N, t1 * cfg.nr); j0 += cfg.nr) {
        for (int64_t i0 = 0; i0 < M; i0 += cfg.mr) {
          cfg.ukernel_strided_ab(
              K, A.p + i0 * A.rs, A.rs, A.cs, B.p + j0 * B.cs, B.rs, c + i0 * ldc + j0, ldc, alpha,
              beta, std::min<int64_t>(cfg.mr, M - i0), std::min<int64_t>(cfg.nr, N - j0));
        }
      }
    });
    return true;
  }
  if (B.rs != 1) return false;
  // C^T (N x M) = B^T (N x K, rows of B^T are B's contiguous columns) . A^T (K x M).
  const GemmConfig<T>& cfg = gemm_config_for(active, N, M);
  if (M > cfg.nr || ceil_div(M, active.mr) > tuning::kSmallGemmMaxRowTiles) return false;
  AlignedBuffer<T> at(K * cfg.nr), ct(checked_mul(N, M, "gemm scratch"));
  pack_b(StridedMatrix<T>{A.p, A.cs, A.rs}, cfg.nr, 0, K, 0, M, at.data());
  // Each part transposes its own rows of C^T (columns of C) as soon as they are computed, a
  // cache line of C's columns at a time: the block's rows of C^T stay in L1 while each row of
  // C gets one contiguous line. (Reading C^T down its columns for the whole of C missed the
  // cache at every element, and ran serially; one column at a time thrashes L1 when C's row
  // stride is a multiple of 4 KiB.)
  parallel_for(ceil_div(N, cfg.mr), work, [&](int64_t t0, int64_t t1) {
    const int64_t j0 = t0 * cfg.mr, j1 = std::min(N, t1 * cfg.mr);
    for (int64_t i0 = j0; i0 < j1; i0 += cfg.mr) {
      cfg.ukernel_strided_a(K, B.p + i0 * B.cs, B.cs, B.rs, at.data(), ct.data() + i0 * M, M, alpha,
                            T(0), std::min<int64_t>(cfg.mr, N - i0), M);
    }
    constexpr int64_t kLine = 64 / sizeof(T);
    for (int64_t jb = j0; jb < j1; jb += kLine) {
      const int64_t je = std::min(j1, jb + kLine);
      for (int64_t i = 0; i < M; ++i) {
        T* row = c + i * ldc;
        if (beta == T(0)) {
          for (int64_t j = jb; j < je; ++j) row[j] = ct.data()[j * M + i];
        } else {
          for (int64_t j = jb; j < je; ++j) row[j] = ct.data()[j * M + i] + beta * row[j];
        }
      }
    }
  });
  return true;
}

}  // namespace

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rsa, int64_t csa,
          const T* b, int64_t rsb, int64_t csb, T beta, T* c, int64_t ldc) {
  const StridedMatrix<T> A{a, rsa, csa}, B{b, rsb, csb};
  if (gemm_small(gemm_config<T>(), M, N, K, alpha, A, B, beta, c, ldc)) return;
  const GemmConfig<T>& cfg = gemm_config_for(gemm_config<T>(), M, N);
  auto pb = [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, T* dst) {
    pack_b(B, cfg.nr, k0, kc, j0, nc, dst);
  };
  if (N <= cfg.nr && !gemm_use_split_k(cfg, M, N, K)) {
    // Each element of A meets a single B micro-panel: read A in place instead of copying it.
    gemm_driver<T>(cfg, M, N, K, alpha, InPlaceA<T>{A}, pb, beta, c, ldc);
    return;
  }
  auto pa = [&](int64_t i0, int64_t mc, int64_t k0, int64_t kc, T* dst) {
    pack_a(A, cfg.mr, i0, mc, k0, kc, dst);
  };
  gemm_driver<T>(cfg, M, N, K, alpha, pa, pb, beta, c, ldc);
}

template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t,
                          const float*, int64_t, int64_t, float, float*, int64_t);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t);

}  // namespace fastcnn
