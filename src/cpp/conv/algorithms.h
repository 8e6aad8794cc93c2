// Which convolution algorithm runs: one ordered list per pass (algorithms.cpp), as oneDNN's
// cpu_convolution_list.cpp. Each entry says for itself whether it supports a call (can compute
// it: the geometry, the settings, finite weights where it needs them) and whether the default
// order prefers it there (it measured faster than the entries after it, tuning.h); the first
// supported and preferred entry runs, and the last entry of every list always applies. An
// entry that may decline mid-run (Winograd, on non-finite data or an overflow) says so in the
// list, and the next entry then runs. A pinned algorithm (tests, benchmarks) runs wherever it
// is supported, preferred or not; where it is not, the default order decides.
#pragma once

#include <string>
#include <vector>

namespace fastcnn {

enum class ConvPass { forward, backward_data, backward_weights };
constexpr int kConvPasses = 3;

// "forward", "backward_data", "backward_weights".
const char* conv_pass_name(ConvPass pass);

// A pass's algorithms by name, in the order the default choice tries them.
std::vector<std::string> conv_algorithm_list(ConvPass pass);

// The pinned algorithm's name, "" when none is (the default order then decides everywhere).
std::string get_conv_algorithm();
// Pins `name` for every pass whose list has it, process-wide; "" unpins. An unknown name is
// std::invalid_argument naming the known ones.
void set_conv_algorithm(const std::string& name);

// The algorithm the calling thread's last call of `pass` ran (after any decline), or nullptr
// before its first call; calls on an empty batch run none and leave it as it was.
const char* last_conv_algorithm(ConvPass pass);

}  // namespace fastcnn
