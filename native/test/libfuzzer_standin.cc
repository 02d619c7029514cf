// Stand-in for libFuzzer where clang is not installed: feeds the target random and mutated
// inputs (seeded, so a failure reproduces) under the sanitizers.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  const long iterations = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 200000;
  std::mt19937 random(20261126);
  std::vector<uint8_t> input;
  for (long i = 0; i < iterations; i++) {
    input.resize(random() % 200);
    for (auto& byte : input) byte = static_cast<uint8_t>(random());
    // Bias toward the interesting region: a valid flags word and Ethernet/IP headers.
    if (input.size() > 8 && (random() & 1)) {
      input[0] = 0x08;
      input[1] = input[2] = input[3] = input[7] = 0;
    }
    if (input.size() > 24 && (random() & 1)) {
      input[20] = 0x08;
      input[21] = (random() & 1) ? 0x00 : 0xDD;
      input[22] = (random() & 1) ? 0x45 : 0x60;
    }
    // Copy into an exactly-sized allocation so ASan sees any overread.
    std::vector<uint8_t> exact(input);
    exact.shrink_to_fit();
    LLVMFuzzerTestOneInput(exact.data(), exact.size());
  }
  std::printf("fuzz: %ld inputs, no crash\n", iterations);
  return 0;
}
