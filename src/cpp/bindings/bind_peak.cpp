// fma_peak: the measured float32 multiply-add peak of one ISA on all threads (peak/peak.h),
// for `fastcnn bench`'s % of peak. Parses the ISA name, releases the GIL, calls.
#include "bindings/bindings.h"
#include "common/cpu.h"
#include "peak/peak.h"

namespace fastcnn::bind {

void bind_peak(py::module_& m) {
  m.def(
      "fma_peak",
      [](const std::string& isa, double min_seconds, int repeat) {
        const Isa parsed = parse_isa(isa);
        FmaPeak r;
        {
          py::gil_scoped_release release;
          r = fma_peak(parsed, min_seconds, repeat);
        }
        py::dict d;
        d["isa"] = isa_name(parsed);
        d["gflops"] = r.gflops;
        d["seconds"] = r.seconds;
        d["flops"] = r.flops;
        d["threads"] = r.threads;
        d["chains"] = r.chains;
        d["lanes"] = r.lanes;
        d["checksum"] = r.checksum;
        return d;
      },
      py::arg("isa"), py::arg("min_seconds") = 0.05, py::arg("repeat") = 5,
      "The float32 multiply-add peak of ISA `isa` on all threads, measured: independent FMA "
      "chains on registers (see peak/peak.h). A dict of isa, gflops (best of `repeat` runs of "
      "at least min_seconds), seconds, flops, threads, chains, lanes and checksum.");
}

}  // namespace fastcnn::bind
