// fastcnn._core._testing: a PRIVATE binding for the kernel-level tests (tests/test_ukernels.py,
// tests/test_cpu_config.py, tests/test_memory.py), not public API and not stable. It runs the
// CPU-description pure functions (CPUID decoding, microarchitecture classification, the
// blocking model) on given values, reads the scratch caches' counters, and calls one GEMM
// micro-kernel of one registered configuration,
// one convolution kernel of one ISA, or one Winograd weight transform on flat numpy buffers,
// after checking that every element the kernel may touch lies inside the buffers it is given:
// a wrong test gets a ValueError or TypeError, never a write outside an array. Blocking,
// packing and threads are left to the drivers; this reaches only the pieces they are made of.
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "bindings/bindings.h"
#include "common/cpu.h"
#include "common/memory.h"
#include "common/tuning.h"
#include "conv/conv_kernels.h"
#include "conv/winograd.h"
#include "gemm/ukernel.h"

namespace fastcnn::bind {

namespace {

constexpr const char* kWhere = "_testing";

std::string what(const char* name) { return std::string(kWhere) + ": " + name; }

// The data and element count of a flat buffer.
template <class U>
struct Flat {
  U* data;
  int64_t size;
};

// A 1-D C-contiguous array of U (TypeError for another dtype, ValueError otherwise).
template <class U>
Flat<const U> flat(const py::array& a, const char* name) {
  if (!is_dtype<U>(a)) {
    throw py::type_error(what(name) + " has dtype " + std::string(py::str(a.dtype())) +
                         ", expected " + std::string(py::str(py::dtype::of<U>())));
  }
  require(a.ndim() == 1 && (a.flags() & py::array::c_style) != 0,
          what(name) + " must be a 1-D contiguous array");
  require(reinterpret_cast<std::uintptr_t>(a.data()) % alignof(U) == 0,
          what(name) + " must be aligned to its item size");
  return {static_cast<const U*>(a.data()), static_cast<int64_t>(a.size())};
}

template <class U>
Flat<U> flat_out(py::array& a, const char* name) {
  const Flat<const U> f = flat<U>(a, name);
  require(a.writeable(), what(name) + " must be writeable");
  return {static_cast<U*>(a.mutable_data()), f.size};
}

// An optional argument a call needs: a numpy array (a TypeError for anything else; the
// caster would otherwise build a new array from a list, which the kernel would then write).
py::array given_array(const py::object& o, const char* name) {
  require(!o.is_none(), what(name) + " is required here");
  if (!py::isinstance<py::array>(o)) throw py::type_error(what(name) + " must be a numpy array");
  return o.cast<py::array>();
}

void require_nonnegative(int64_t v, const char* name) {
  require(v >= 0, what(name) + " must be >= 0, got " + std::to_string(v));
}

// base + sum over axes of (extent - 1) * stride: the furthest element a loop nest with those
// extents (each >= 1) and strides (each >= 0) touches; an overflow is an error, not a wrap.
int64_t furthest(int64_t base, std::initializer_list<std::pair<int64_t, int64_t>> axes) {
  int64_t r = base;
  for (const auto& [extent, stride] : axes) {
    if (__builtin_add_overflow(r, checked_mul(extent - 1, stride, kWhere), &r)) {
      throw std::invalid_argument(what("index") + " overflows int64");
    }
  }
  return r;
}

void require_inside(int64_t index, int64_t size, const char* name) {
  require(index < size, what(name) + ": the kernel would touch element " + std::to_string(index) +
                            " of a buffer of " + std::to_string(size));
}

// An int64 offset array of at least `count` entries, all >= 0; returns its largest (0 if
// count is 0).
int64_t max_offset(const Flat<const int64_t>& off, int64_t count, const char* name) {
  require(off.size >= count, what(name) + " has " + std::to_string(off.size) +
                                 " entries, the kernel reads " + std::to_string(count));
  int64_t hi = 0;
  for (int64_t i = 0; i < count; ++i) {
    require(off.data[i] >= 0, what(name) + " has a negative entry");
    hi = std::max(hi, off.data[i]);
  }
  return hi;
}

// Packed panels come from pack.h's 64-byte-aligned buffers, and the SIMD kernels load B's
// panel with aligned loads of up to 64 bytes.
constexpr std::uintptr_t kPanelAlignment = 64;

// ---- GEMM micro-kernels -----------------------------------------------------------------

// The registered configuration named `name` (GemmConfig::name) among those of the ISAs this
// CPU runs, or null: only kernels the CPU can execute are reachable.
template <class T>
const GemmConfig<T>* find_config(const std::string& name) {
  for (Isa isa : available_isas()) {
    for (const GemmConfig<T>* cfg : gemm_configs<T>(isa)) {
      if (name == cfg->name) return cfg;
    }
  }
  return nullptr;
}

// The arguments of one micro-kernel call (see gemm/ukernel.h for each form's contract).
struct GemmCall {
  std::string form;
  int64_t kc, m, n;
  py::array a;
  int64_t rsa, csa;
  py::object aoff, koff;
  py::array b;
  int64_t rsb;
  py::object boff;
  py::array c;
  int64_t ldc;
  double alpha, beta;
};

template <class T>
void call_gemm_ukernel(const GemmConfig<T>& cfg, GemmCall& k) {
  const std::string& form = k.form;
  const bool packed_a = form == "packed" || form == "indirect_b";
  const bool strided_a = form == "strided_a" || form == "strided_ab";
  const bool indirect_a = form == "indirect_a";
  const bool packed_b = form == "packed" || form == "strided_a" || form == "indirect_a";
  const bool indirect_b = form == "indirect_b";
  const bool strided_b = form == "strided_ab";
  require(packed_a || strided_a || indirect_a,
          what("form") + " must be packed, strided_a, indirect_b, indirect_a or strided_ab, got " +
              form);
  require(k.kc >= 0 && k.m >= 1 && k.m <= cfg.mr && k.n >= 1 && k.n <= cfg.nr,
          what("gemm_ukernel") + " needs kc >= 0, 1 <= m <= " + std::to_string(cfg.mr) +
              ", 1 <= n <= " + std::to_string(cfg.nr));
  require(k.ldc >= k.n, what("ldc") + " must be >= n");
  // Arguments a form does not use must keep their defaults: a test passing them is wrong.
  require(strided_a || (k.rsa == 0 && k.csa == 0), what("rsa/csa") + " are for strided A only");
  require(strided_b || k.rsb == 0, what("rsb") + " is for strided_ab only");
  require(indirect_a || (k.aoff.is_none() && k.koff.is_none()),
          what("aoff/koff") + " are for indirect_a only");
  require(indirect_b || k.boff.is_none(), what("boff") + " is for indirect_b only");
  require(!(indirect_a || indirect_b) || k.alpha == 1.0,
          what("alpha") + " must be 1 for the indirect forms (they have none)");

  const Flat<const T> a = flat<T>(k.a, "a");
  const Flat<const T> b = flat<T>(k.b, "b");
  const Flat<T> c = flat_out<T>(k.c, "c");
  require_inside(furthest(0, {{k.m, k.ldc}, {k.n, 1}}), c.size, "c");
  const int64_t mr = cfg.mr, nr = cfg.nr;

  // A: a packed panel is read whole (all MR rows), in-place A only for rows below m.
  if (strided_a) {
    require_nonnegative(k.rsa, "rsa");
    require_nonnegative(k.csa, "csa");
  }
  const int64_t* aoff = nullptr;
  const int64_t* koff = nullptr;
  if (indirect_a) {
    const Flat<const int64_t> ao = flat<int64_t>(given_array(k.aoff, "aoff"), "aoff");
    const Flat<const int64_t> ko = flat<int64_t>(given_array(k.koff, "koff"), "koff");
    const int64_t amax = max_offset(ao, k.m, "aoff"), kmax = max_offset(ko, k.kc, "koff");
    int64_t last;
    require(!__builtin_add_overflow(amax, kmax, &last), what("aoff + koff") + " overflows");
    if (k.kc > 0) require_inside(last, a.size, "a");
    aoff = ao.data;
    koff = ko.data;
  }
  if (k.kc > 0 && packed_a) require_inside(furthest(0, {{k.kc, mr}, {mr, 1}}), a.size, "a");
  if (k.kc > 0 && strided_a) {
    require_inside(furthest(0, {{k.m, k.rsa}, {k.kc, k.csa}}), a.size, "a");
  }

  // B: a packed panel is read whole (kc x NR, aligned); indirect rows NR wide whatever n is;
  // strided rows only n wide (masked loads).
  const int64_t* boff = nullptr;
  if (packed_b && k.kc > 0) {
    require(reinterpret_cast<std::uintptr_t>(b.data) % kPanelAlignment == 0,
            what("b") + " (a packed panel) must be 64-byte aligned");
    require_inside(furthest(0, {{k.kc, nr}, {nr, 1}}), b.size, "b");
  }
  if (indirect_b) {
    const Flat<const int64_t> bo = flat<int64_t>(given_array(k.boff, "boff"), "boff");
    const int64_t bmax = max_offset(bo, k.kc, "boff");
    if (k.kc > 0) require_inside(furthest(bmax, {{nr, 1}}), b.size, "b");
    boff = bo.data;
  }
  if (strided_b) {
    require_nonnegative(k.rsb, "rsb");
    if (k.kc > 0) require_inside(furthest(0, {{k.kc, k.rsb}, {k.n, 1}}), b.size, "b");
  }

  const T alpha = static_cast<T>(k.alpha), beta = static_cast<T>(k.beta);
  if (form == "packed") {
    cfg.ukernel(k.kc, a.data, 0, 0, b.data, c.data, k.ldc, alpha, beta, k.m, k.n);
  } else if (form == "strided_a") {
    cfg.ukernel_strided_a(k.kc, a.data, k.rsa, k.csa, b.data, c.data, k.ldc, alpha, beta, k.m, k.n);
  } else if (indirect_b) {
    cfg.ukernel_indirect_b(k.kc, a.data, b.data, boff, c.data, k.ldc, beta, k.m, k.n);
  } else if (indirect_a) {
    cfg.ukernel_indirect_a(k.kc, a.data, aoff, koff, b.data, c.data, k.ldc, beta, k.m, k.n);
  } else {
    cfg.ukernel_strided_ab(k.kc, a.data, k.rsa, k.csa, b.data, k.rsb, c.data, k.ldc, alpha, beta,
                           k.m, k.n);
  }
}

template <class T>
void add_configs(py::list& out, const char* dtype) {
  std::vector<std::string> seen;
  for (Isa isa : available_isas()) {
    for (const GemmConfig<T>* cfg : gemm_configs<T>(isa)) {
      if (std::find(seen.begin(), seen.end(), cfg->name) != seen.end()) continue;
      seen.emplace_back(cfg->name);
      py::dict d;
      d["name"] = cfg->name;
      d["dtype"] = dtype;
      d["isa"] = isa_name(isa);
      d["mr"] = cfg->mr;
      d["nr"] = cfg->nr;
      out.append(d);
    }
  }
}

// ---- convolution kernels ----------------------------------------------------------------

// Rows and columns of a Winograd output tile that exist, per edge bit (see conv_kernels.h).
std::pair<int64_t, int64_t> tile_extent(uint8_t edge) {
  return {edge & 2 ? 2 : 1, edge & 1 ? 2 : 1};
}

// Checks the per-tile pixels (rows x cols x K, pixel (i, j) at off[t] + i*ys + j*K) of every
// tile lie inside a buffer of `size`; returns the edge array.
const uint8_t* check_tile_pixels(const py::array& off_arr, const py::array& edge_arr,
                                 int64_t ntiles, int64_t K, int64_t ys, int64_t size,
                                 const char* name) {
  const Flat<const int64_t> off = flat<int64_t>(off_arr, "off");
  const Flat<const uint8_t> edge = flat<uint8_t>(edge_arr, "edge");
  max_offset(off, ntiles, "off");
  require(edge.size >= ntiles, what("edge") + " has fewer entries than tiles");
  require_nonnegative(ys, "ys");
  for (int64_t t = 0; t < ntiles; ++t) {
    require(edge.data[t] <= 3, what("edge") + " entries must be 0..3");
    const auto [rows, cols] = tile_extent(edge.data[t]);
    require_inside(furthest(off.data[t], {{rows, ys}, {cols, K}, {K, 1}}), size, name);
  }
  return edge.data;
}

// Calls f(T{}, kernels) with T the dtype of `a` (float32 or float64) and the convolution
// kernels of ISA `isa` for T (parse_isa refuses an ISA this CPU or build cannot run).
template <class F>
void with_conv_kernels(const std::string& isa, const py::array& a, const char* where, F&& f) {
  const Isa parsed = parse_isa(isa);
  dispatch_float(a, where, [&](auto t) {
    using T = decltype(t);
    f(t, conv_kernels<T>(parsed));
  });
}

// Largest dst index of to_pixel_major's value j < cols of row 0: (j / run)*drs + (j % run)*ldd
// grows within a run and between runs, so it is at the last value or at the end of the run
// before the last.
int64_t furthest_pixel_major(int64_t cols, int64_t run, int64_t ldd, int64_t drs) {
  const int64_t last = cols - 1;
  int64_t hi = furthest(0, {{last / run + 1, drs}, {last % run + 1, ldd}});
  if (last / run > 0) hi = std::max(hi, furthest(0, {{last / run, drs}, {run, ldd}}));
  return hi;
}

void bind_conv_kernels(py::module_& t) {
  t.def(
      "winograd_input",
      [](const std::string& isa, int64_t C, int64_t ntiles, const py::array& x,
         const py::array& off, int64_t ws, py::array& v, int64_t vs) {
        with_conv_kernels(isa, x, "winograd_input", [&](auto tag, const auto& kernels) {
          using T = decltype(tag);
          require(C >= 1, what("C") + " must be >= 1");
          require_nonnegative(ntiles, "ntiles");
          require_nonnegative(ws, "ws");
          require(vs >= checked_mul(ntiles, C, kWhere), what("vs") + " must be >= ntiles * C");
          const Flat<const T> xf = flat<T>(x, "x");
          const Flat<T> vf = flat_out<T>(v, "v");
          const Flat<const int64_t> of = flat<int64_t>(off, "off");
          const int64_t hi = max_offset(of, ntiles, "off");
          if (ntiles == 0) return;
          require_inside(furthest(hi, {{4, ws}, {4, C}, {C, 1}}), xf.size, "x");
          require_inside(furthest(0, {{16, vs}, {ntiles * C, 1}}), vf.size, "v");
          kernels.winograd_input(C, ntiles, xf.data, of.data, ws, vf.data, vs);
        });
      },
      py::arg("isa"), py::arg("C"), py::arg("ntiles"), py::arg("x"), py::arg("off"), py::arg("ws"),
      py::arg("v"), py::arg("vs"),
      "v[xi*vs + t*C + c] = (B^T d B)[xi], d the 4 x 4 window at x[off[t]:] (see conv_kernels.h).");
  t.def(
      "winograd_output",
      [](const std::string& isa, int64_t K, int64_t ntiles, const py::array& m, int64_t ms,
         py::array& y, const py::array& off, const py::array& edge, int64_t ys) {
        with_conv_kernels(isa, m, "winograd_output", [&](auto tag, const auto& kernels) {
          using T = decltype(tag);
          require(K >= 1, what("K") + " must be >= 1");
          require_nonnegative(ntiles, "ntiles");
          require(ms >= checked_mul(ntiles, K, kWhere), what("ms") + " must be >= ntiles * K");
          const Flat<const T> mf = flat<T>(m, "m");
          const Flat<T> yf = flat_out<T>(y, "y");
          const uint8_t* ef = check_tile_pixels(off, edge, ntiles, K, ys, yf.size, "y");
          if (ntiles == 0) return;
          require_inside(furthest(0, {{16, ms}, {ntiles * K, 1}}), mf.size, "m");
          kernels.winograd_output(K, ntiles, mf.data, ms, yf.data, flat<int64_t>(off, "off").data,
                                  ef, ys);
        });
      },
      py::arg("isa"), py::arg("K"), py::arg("ntiles"), py::arg("m"), py::arg("ms"), py::arg("y"),
      py::arg("off"), py::arg("edge"), py::arg("ys"),
      "The 2 x 2 outputs A^T m A of each tile, written where edge[t] says they exist.");
  t.def(
      "winograd_dy",
      [](const std::string& isa, int64_t K, int64_t ntiles, const py::array& dy,
         const py::array& off, const py::array& edge, int64_t ys, py::array& z, int64_t zs,
         int64_t nr) {
        with_conv_kernels(isa, dy, "winograd_dy", [&](auto tag, const auto& kernels) {
          using T = decltype(tag);
          require(K >= 1 && nr >= 1, what("K and nr") + " must be >= 1");
          require_nonnegative(ntiles, "ntiles");
          // K / nr rounded up without ceil_div's K + nr - 1, which a huge K would overflow.
          const int64_t panels = checked_mul(K / nr + (K % nr != 0 ? 1 : 0), nr, kWhere);
          const int64_t zcols = checked_mul(panels, ntiles, kWhere);
          require(zs >= zcols, what("zs") + " must be >= ceil(K / nr) * nr * ntiles");
          const Flat<const T> df = flat<T>(dy, "dy");
          const Flat<T> zf = flat_out<T>(z, "z");
          const uint8_t* ef = check_tile_pixels(off, edge, ntiles, K, ys, df.size, "dy");
          if (ntiles == 0) return;
          require_inside(furthest(0, {{16, zs}, {zcols, 1}}), zf.size, "z");
          kernels.winograd_dy(K, ntiles, df.data, flat<int64_t>(off, "off").data, ef, ys, zf.data,
                              zs, nr);
        });
      },
      py::arg("isa"), py::arg("K"), py::arg("ntiles"), py::arg("dy"), py::arg("off"),
      py::arg("edge"), py::arg("ys"), py::arg("z"), py::arg("zs"), py::arg("nr"),
      "Z = A g A^T of each 2 x 2 dy tile, packed in panels of nr channels.");
  t.def(
      "to_pixel_major",
      [](const std::string& isa, const py::array& src, int64_t rows, int64_t cols, int64_t lds,
         py::array& dst, int64_t ldd, int64_t run, int64_t drs) {
        bool finite = true;
        with_conv_kernels(isa, src, "to_pixel_major", [&](auto tag, const auto& kernels) {
          using T = decltype(tag);
          require_nonnegative(rows, "rows");
          require_nonnegative(cols, "cols");
          require(run >= 1, what("run") + " must be >= 1");
          require(lds >= 0 && ldd >= 0 && drs >= 0, what("lds, ldd and drs") + " must be >= 0");
          const Flat<const T> sf = flat<T>(src, "src");
          const Flat<T> df = flat_out<T>(dst, "dst");
          if (rows == 0 || cols == 0) return;
          require_inside(furthest(0, {{rows, lds}, {cols, 1}}), sf.size, "src");
          require_inside(furthest(furthest_pixel_major(cols, run, ldd, drs), {{rows, 1}}), df.size,
                         "dst");
          finite = kernels.to_pixel_major(sf.data, rows, cols, lds, df.data, ldd, run, drs);
        });
        return finite;
      },
      py::arg("isa"), py::arg("src"), py::arg("rows"), py::arg("cols"), py::arg("lds"),
      py::arg("dst"), py::arg("ldd"), py::arg("run"), py::arg("drs"),
      "dst[(j // run)*drs + (j % run)*ldd + i] = src[i*lds + j]; False if a value is not finite.");
  t.def(
      "from_pixel_major",
      [](const std::string& isa, const py::array& src, int64_t count, int64_t K, int64_t lds,
         const py::object& b, bool relu, py::array& y, int64_t plane) {
        bool finite = true;
        with_conv_kernels(isa, src, "from_pixel_major", [&](auto tag, const auto& kernels) {
          using T = decltype(tag);
          require_nonnegative(count, "count");
          require_nonnegative(K, "K");
          require(lds >= 0 && plane >= 0, what("lds and plane") + " must be >= 0");
          const Flat<const T> sf = flat<T>(src, "src");
          const Flat<T> yf = flat_out<T>(y, "y");
          const T* pb = nullptr;
          if (!b.is_none()) {
            const Flat<const T> bf = flat<T>(given_array(b, "b"), "b");
            require(bf.size >= K, what("b") + " has fewer than K entries");
            pb = bf.data;
          }
          if (count == 0 || K == 0) return;
          require_inside(furthest(0, {{count, lds}, {K, 1}}), sf.size, "src");
          require_inside(furthest(0, {{K, plane}, {count, 1}}), yf.size, "y");
          finite = kernels.from_pixel_major(sf.data, count, K, lds, pb, relu, yf.data, plane);
        });
        return finite;
      },
      py::arg("isa"), py::arg("src"), py::arg("count"), py::arg("K"), py::arg("lds"), py::arg("b"),
      py::arg("relu"), py::arg("y"), py::arg("plane"),
      "y[k*plane + j] = src[j*lds + k] + b[k] (then ReLU); False if a sum is not finite.");
}

// ---- Winograd weight transforms (portable code, one per dtype) ----------------------------

// K and C of a C-contiguous K x C x 3 x 3 filter array.
std::pair<int64_t, int64_t> filter_dims(const py::array& w, const char* name) {
  require(w.ndim() == 4 && w.shape(2) == 3 && w.shape(3) == 3,
          what(name) + " must be K x C x 3 x 3, got " + shape_str(w));
  return {w.shape(0), w.shape(1)};
}

Geometry2d channels(int64_t C, int64_t K) {
  Geometry2d g{};
  g.c = C;
  g.k = K;
  return g;
}

void bind_weight_transforms(py::module_& t) {
  t.def(
      "transform_weights",
      [](const py::array& w, int64_t k0, int64_t k1, py::array& u) {
        dispatch_float(w, "transform_weights", [&](auto tag) {
          using T = decltype(tag);
          const auto [K, C] = filter_dims(w, "w");
          const T* pw = data_of<T>(w, {K, C, 3, 3}, kWhere, "w");
          require(0 <= k0 && k0 <= k1 && k1 <= K, what("k0, k1") + " must be 0 <= k0 <= k1 <= K");
          const Flat<T> uf = flat_out<T>(u, "u");
          require(uf.size >= checked_mul(16, checked_mul(C, K, kWhere), kWhere),
                  what("u") + " must hold 16 * C * K values");
          transform_weights(channels(C, K), pw, k0, k1, uf.data);
        });
      },
      py::arg("w"), py::arg("k0"), py::arg("k1"), py::arg("u"),
      "u[xi*C*K + c*K + k] = (G g G^T)[xi] for filters k0 <= k < k1 of w (K, C, 3, 3).");
  t.def(
      "gradient_to_weights",
      [](const py::array& du, py::array& dw) {
        dispatch_float(du, "gradient_to_weights", [&](auto tag) {
          using T = decltype(tag);
          const auto [K, C] = filter_dims(dw, "dw");
          T* pdw = mutable_data_of<T>(dw, {K, C, 3, 3}, kWhere, "dw");
          const Flat<const T> df = flat<T>(du, "du");
          require(df.size >= checked_mul(16, checked_mul(C, K, kWhere), kWhere),
                  what("du") + " must hold 16 * C * K values");
          gradient_to_weights(channels(C, K), df.data, pdw);
        });
      },
      py::arg("du"), py::arg("dw"),
      "dw (K, C, 3, 3) = G^T dU G from du[xi*C*K + c*K + k] (the adjoint of transform_weights).");
}

// ---- CPU description ------------------------------------------------------------------

py::dict descriptor_dict(const CacheDescriptor& d) {
  static const char* const kTypes[] = {"none", "data", "instruction", "unified"};
  py::dict out;
  out["level"] = d.level;
  out["type"] = kTypes[static_cast<int>(d.type)];
  out["size"] = d.size;
  out["line"] = d.line;
  out["ways"] = d.ways;
  out["sharing"] = d.sharing;
  return out;
}

CacheLevel level_from(const py::dict& caches, const char* name) {
  require(caches.contains(name), what("caches") + " needs '" + name + "'");
  const py::dict d = caches[name].cast<py::dict>();
  CacheLevel c;
  c.size = d["size"].cast<int64_t>();
  c.line = d.contains("line") ? d["line"].cast<int>() : 64;
  c.ways = d.contains("ways") ? d["ways"].cast<int>() : 0;
  c.sharing = d.contains("sharing") ? d["sharing"].cast<int>() : 1;
  require(c.size > 0, what("caches") + "['" + name + "']['size'] must be > 0");
  return c;
}

void bind_cpu_description(py::module_& t) {
  t.def(
      "decode_cache_leaf",
      [](uint32_t eax, uint32_t ebx, uint32_t ecx, uint32_t edx) {
        return descriptor_dict(decode_cache_leaf(eax, ebx, ecx, edx));
      },
      py::arg("eax"), py::arg("ebx"), py::arg("ecx"), py::arg("edx"),
      "One CPUID leaf-4 / 0x8000001D subleaf decoded: level, type, size, line, ways, sharing.");
  t.def(
      "caches_from_cpuid",
      [](const py::list& subleaves) {
        std::vector<CacheDescriptor> descriptors;
        for (const py::handle& item : subleaves) {
          const py::tuple r = item.cast<py::tuple>();
          require(r.size() == 4, what("subleaves") + ": each is (eax, ebx, ecx, edx)");
          const CacheDescriptor d = decode_cache_leaf(r[0].cast<uint32_t>(), r[1].cast<uint32_t>(),
                                                      r[2].cast<uint32_t>(), r[3].cast<uint32_t>());
          if (d.type == CacheType::none) break;
          descriptors.push_back(d);
        }
        CpuCaches caches = caches_from_descriptors(descriptors);
        caches.source = "cpuid";
        return caches_dict(caches);
      },
      py::arg("subleaves"),
      "The caches (as cpu_info()['caches']) of a list of (eax, ebx, ecx, edx) subleaves, read "
      "up to the first of type none; a level not described has size 0.");
  t.def(
      "caches_from_sysfs",
      [](const std::string& dir) {
        CpuCaches caches = caches_from_descriptors(sysfs_cache_descriptors(dir));
        caches.source = "sysfs";
        return caches_dict(caches);
      },
      py::arg("dir"),
      "The caches (as cpu_info()['caches']) a sysfs-style directory (index0, index1, ...) "
      "describes; a level not described has size 0.");
  t.def(
      "decode_family_model",
      [](uint32_t eax) {
        int family = 0, model = 0;
        decode_family_model(eax, family, model);
        return py::make_tuple(family, model);
      },
      py::arg("eax"), "(family, model) from CPUID leaf 1's EAX.");
  t.def(
      "classify_microarch",
      [](const std::string& vendor, int family, const py::dict& features) {
        auto has = [&](const char* name) {
          return features.contains(name) && features[name].cast<bool>();
        };
        CpuFeatures f;
        f.avx2 = has("avx2");
        f.fma = has("fma");
        f.avx512f = has("avx512f");
        f.avx512fp16 = has("avx512fp16");
        f.amx_tile = has("amx-tile");
        return std::string(microarch_name(classify_microarch(vendor, family, f)));
      },
      py::arg("vendor"), py::arg("family"), py::arg("features"),
      "The microarchitecture class of a CPU (features: as cpu_features(), missing = False).");
  t.def(
      "model_gemm_blocking",
      [](int mr, int nr, int elem_bytes, const py::dict& caches) {
        require(mr >= 1 && nr >= 1 && (elem_bytes == 4 || elem_bytes == 8),
                what("model_gemm_blocking") + ": need mr, nr >= 1 and elem_bytes 4 or 8");
        CpuCaches c;
        c.l1d = level_from(caches, "l1d");
        c.l2 = level_from(caches, "l2");
        c.l3 = level_from(caches, "l3");
        const GemmBlocking b = model_gemm_blocking(mr, nr, elem_bytes, c);
        return py::make_tuple(b.mc, b.kc, b.nc);
      },
      py::arg("mr"), py::arg("nr"), py::arg("elem_bytes"), py::arg("caches"),
      "(mc, kc, nc) the blocking model gives an mr x nr tile on these caches (dicts of size, "
      "and optionally line, ways, sharing, under l1d, l2, l3).");
}

}  // namespace

void bind_testing(py::module_& m) {
  py::module_ t = m.def_submodule(
      "_testing",
      "PRIVATE, for fastcnn's kernel tests only (not public API): single micro-kernel and "
      "convolution-kernel calls on flat buffers, every index checked against the buffers.");
  t.def(
      "workspace_stats",
      [] {
        const workspace::Stats st = workspace::stats();
        py::dict out;
        out["allocations"] = st.allocations;
        out["allocated_bytes"] = st.allocated_bytes;
        out["cached_bytes"] = st.cached_bytes;
        out["cache_limit_bytes"] = tuning::kWorkspaceCacheBytes;
        return out;
      },
      "The scratch caches' counters (common/memory.cpp): blocks and bytes taken from malloc "
      "since start-up, the bytes all threads' caches hold now, and each thread's bound.");
  t.def(
      "workspace_release_thread_cache", [] { workspace::release_thread_cache(); },
      "Frees the calling thread's cached scratch blocks.");
  t.def(
      "gemm_ukernels",
      [] {
        py::list out;
        add_configs<float>(out, "float32");
        add_configs<double>(out, "float64");
        return out;
      },
      "The registered GEMM micro-kernel configurations of the ISAs this CPU runs: dicts of "
      "name, dtype, isa, mr, nr.");
  t.def(
      "gemm_ukernel",
      [](const std::string& name, const std::string& form, int64_t kc, int64_t m, int64_t n,
         const py::array& a, const py::array& b, py::array& c, int64_t ldc, double alpha,
         double beta, int64_t rsa, int64_t csa, int64_t rsb, const py::object& aoff,
         const py::object& koff, const py::object& boff) {
        GemmCall call{form, kc, m, n, a, rsa, csa, aoff, koff, b, rsb, boff, c, ldc, alpha, beta};
        if (const GemmConfig<float>* cfg = find_config<float>(name)) {
          call_gemm_ukernel(*cfg, call);
        } else if (const GemmConfig<double>* cfg = find_config<double>(name)) {
          call_gemm_ukernel(*cfg, call);
        } else {
          require(false, what("gemm_ukernel") + ": no registered kernel '" + name +
                             "' that this CPU runs (see gemm_ukernels())");
        }
      },
      py::arg("name"), py::arg("form"), py::arg("kc"), py::arg("m"), py::arg("n"), py::arg("a"),
      py::arg("b"), py::arg("c"), py::arg("ldc"), py::kw_only(), py::arg("alpha") = 1.0,
      py::arg("beta") = 0.0, py::arg("rsa") = 0, py::arg("csa") = 0, py::arg("rsb") = 0,
      py::arg("aoff") = py::none(), py::arg("koff") = py::none(), py::arg("boff") = py::none(),
      "One call of configuration `name`'s micro-kernel of `form` (packed, strided_a, "
      "indirect_b, indirect_a, strided_ab) on flat buffers; see gemm/ukernel.h.");
  bind_conv_kernels(t);
  bind_weight_transforms(t);
  bind_cpu_description(t);
}

}  // namespace fastcnn::bind
