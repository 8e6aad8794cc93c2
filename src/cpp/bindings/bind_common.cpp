// Runtime configuration: threads, CPU features, identity and caches, the active ISA and its
// micro-kernels and blocking.
#include "bindings/bindings.h"
#include "common/cpu.h"
#include "common/parallel.h"
#include "conv/conv.h"
#include "conv/winograd.h"
#include "gemm/ukernel.h"

namespace fastcnn::bind {

namespace {

py::dict cache_dict(const CacheLevel& c) {
  py::dict d;
  d["size"] = c.size;
  d["line"] = c.line;
  d["ways"] = c.ways;
  d["sharing"] = c.sharing;
  return d;
}

// The active ISA's configurations of one dtype, the main one first (see gemm_configs).
template <class T>
py::list config_list() {
  py::list out;
  for (const GemmConfig<T>* cfg : gemm_configs<T>(active_isa())) {
    py::dict d;
    d["kernel"] = cfg->name;
    d["mr"] = cfg->mr;
    d["nr"] = cfg->nr;
    d["mc"] = cfg->mc;
    d["kc"] = cfg->kc;
    d["nc"] = cfg->nc;
    d["blocking"] = cfg->blocking;
    out.append(d);
  }
  return out;
}

}  // namespace

py::dict caches_dict(const CpuCaches& c) {
  py::dict d;
  d["l1d"] = cache_dict(c.l1d);
  d["l2"] = cache_dict(c.l2);
  d["l3"] = cache_dict(c.l3);
  d["source"] = c.source;
  return d;
}

void bind_common(py::module_& m) {
  // The configurations are chosen here, at import, so a bad FASTCNN_GEMM_BLOCKING fails the
  // import rather than the first product.
  (void)gemm_config<float>();
  (void)gemm_config<double>();
  m.def("get_num_threads", &get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the threads the kernels use.");
  m.def("get_min_thread_work", &get_min_thread_work,
        "Estimated work (ns) each thread of a parallel region must get before a second runs.");
  m.def("set_min_thread_work", &set_min_thread_work, py::arg("ns"),
        "Set that threshold (0: any region with two items or more runs on several threads).");
  m.def("cpu_features", [] {
    const CpuFeatures& f = cpu_features();
    py::dict d;
    d["sse4.2"] = f.sse42;
    d["avx"] = f.avx;
    d["avx2"] = f.avx2;
    d["fma"] = f.fma;
    d["avx512f"] = f.avx512f;
    d["avx512fp16"] = f.avx512fp16;
    d["amx-tile"] = f.amx_tile;
    return d;
  });
  m.def(
      "cpu_info",
      [] {
        const CpuInfo& c = cpu_info();
        py::dict d;
        d["vendor"] = c.vendor;
        d["family"] = c.family;
        d["model"] = c.model;
        d["microarch"] = microarch_name(c.microarch);
        d["caches"] = caches_dict(c.caches);
        return d;
      },
      "Vendor, family, model, microarchitecture class and caches (bytes) of the CPU.");
  m.def("available_isas", [] {
    py::list out;
    for (Isa isa : available_isas()) out.append(isa_name(isa));
    return out;
  });
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def(
      "set_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); }, py::arg("name"));
  m.def("get_winograd_min_tiles", [] {
    const WinogradMinTiles t = get_winograd_min_tiles();
    return py::make_tuple(t.forward, t.weights);
  });
  m.def(
      "set_winograd_min_tiles",
      [](int64_t forward, int64_t weights) { set_winograd_min_tiles({forward, weights}); },
      py::arg("forward"), py::arg("weights"),
      "Output tiles (N * ceil(P/2) * ceil(Q/2)) a call needs before Winograd runs.");
  m.def("get_winograd", &winograd_enabled);
  m.def("set_winograd", &set_winograd_enabled, py::arg("enabled"));
  m.def("kernel_info", [] {
    py::dict d;
    d["f32_gemm"] = gemm_config<float>().name;
    d["f64_gemm"] = gemm_config<double>().name;
    return d;
  });
  m.def(
      "gemm_configs",
      [] {
        py::dict d;
        d["float32"] = config_list<float>();
        d["float64"] = config_list<double>();
        return d;
      },
      "Per dtype, the active ISA's GEMM configurations (main first, then the tiles chosen for "
      "short or narrow products): kernel, mr, nr, mc, kc, nc, blocking "
      "(measured|modelled|FASTCNN_GEMM_BLOCKING).");
  py::dict build;
  build["compiler"] = __VERSION__;
#if defined(FASTCNN_HAVE_AVX2)
  build["avx2_kernels"] = true;
#else
  build["avx2_kernels"] = false;
#endif
#if defined(FASTCNN_HAVE_AVX512)
  build["avx512_kernels"] = true;
#else
  build["avx512_kernels"] = false;
#endif
  m.attr("build_info") = build;
}

}  // namespace fastcnn::bind
