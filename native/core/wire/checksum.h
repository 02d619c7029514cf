// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum
// of the data taken as 16-bit big-endian words. IPv4 headers, TCP and UDP use it; TCP and UDP
// also cover a pseudo-header of addresses, protocol and length (RFC 793, 768, 8200 §8.1).
//
// Conventions used throughout the core:
// - A "sum" is a uint32_t partial one's complement sum of big-endian 16-bit words. It is not
//   folded (it may exceed 0xFFFF) and sums compose by plain checksum_combine().
// - checksum_fold() reduces a sum to 16 bits with end-around carries; it does NOT complement.
//   That folded, uncomplemented value is what virtio_net_hdr's NEEDS_CSUM expects in the
//   checksum field (the pseudo-header "partial" checksum), as the kernel's csum_unfold wants.
// - checksum_finish() = ~checksum_fold(): the value to store in a header's checksum field.
// - Values are plain numbers in network order semantics: store them with store_be16().
// - A packet verifies when checksum_fold(sum over everything, checksum field included) is 0xFFFF.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ovl {

// Adds `length` bytes at `data` to `initial`. The bytes are taken as big-endian 16-bit words
// starting at data[0], whatever the address's alignment; an odd final byte is padded with a
// zero low byte. So only the last block of a multi-call sum may have an odd length (otherwise
// the words would be misaligned). The result is checksum_combine(initial, F) where F is the
// data's sum folded to 16 bits: 0 only when every byte is zero, 0xFFFF for other data whose
// sum is a multiple of 0xFFFF (the serial 16-bit sum's own representation, whatever the
// implementation).
//
// It runs one of several implementations, all with identical results (see
// ChecksumImplementation below), picked once per process on the first call: the fastest this
// CPU can run, unless the environment variable OVERLAYFWD_CHECKSUM names another one it can
// run ("scalar", "avx2", "avx512"; any other value, or one this CPU lacks, is ignored).
uint32_t checksum_add(const uint8_t* data, size_t length, uint32_t initial);

// The implementations of checksum_add, slowest first. Each sums 64-bit or wider words with
// several independent accumulators (no serial carry chain) and takes any alignment.
enum class ChecksumImplementation : uint8_t {
  scalar,  // plain C++: four 64-bit accumulators, their carries counted apart; any CPU
  avx2,    // x86-64 AVX2: 32-byte aligned loads, 32-bit halves summed in 64-bit lanes
  avx512,  // x86-64 AVX-512 F + BW: 64-byte aligned loads, the ragged ends as masked loads
};
constexpr ChecksumImplementation kChecksumImplementations[] = {
    ChecksumImplementation::scalar, ChecksumImplementation::avx2, ChecksumImplementation::avx512};

// "scalar", "avx2", "avx512": the names OVERLAYFWD_CHECKSUM takes.
const char* checksum_implementation_name(ChecksumImplementation implementation);
// Whether this build and CPU can run it (checked with the CPU's feature bits, OS support of the
// wide registers included). scalar always can.
bool checksum_implementation_supported(ChecksumImplementation implementation);
// The implementation checksum_add runs (choosing it now if no call has yet).
ChecksumImplementation checksum_implementation();
// Makes checksum_add run `implementation` from now on, for tests and benches; returns false and
// changes nothing when it is not supported. Not meant to race with checksum_add on other
// threads (it would be safe, but which implementation a concurrent call runs is unspecified).
bool checksum_use_implementation(ChecksumImplementation implementation);
// checksum_add with one given implementation, bypassing the choice: for tests and benches.
// `implementation` must be supported (an unsupported one runs scalar).
uint32_t checksum_add_with(ChecksumImplementation implementation, const uint8_t* data, size_t length,
                           uint32_t initial);

// Adds two partial sums (one's complement addition; keeps the result within 32 bits).
inline uint32_t checksum_combine(uint32_t a, uint32_t b) {
  const uint64_t s = uint64_t{a} + b;
  return static_cast<uint32_t>((s & 0xFFFFFFFFu) + (s >> 32));
}

// Folds a sum to 16 bits (end-around carry). Not complemented.
inline uint16_t checksum_fold(uint32_t sum) {
  sum = (sum & 0xFFFF) + (sum >> 16);
  sum = (sum & 0xFFFF) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The checksum field value: the complement of the folded sum.
inline uint16_t checksum_finish(uint32_t sum) { return static_cast<uint16_t>(~checksum_fold(sum)); }

// Pseudo-header sums. `source`/`destination` point at the 4 (IPv4) or 16 (IPv6) address bytes
// in network order; `l4_length` is the transport header + payload length in bytes.
// IPv4 (RFC 793/768): source, destination, zero, protocol, 16-bit length.
uint32_t pseudo_header_sum_ipv4(const uint8_t* source, const uint8_t* destination, uint8_t protocol,
                                uint32_t l4_length);
// IPv6 (RFC 8200 §8.1): source, destination, 32-bit length, 24 zero bits, next header.
uint32_t pseudo_header_sum_ipv6(const uint8_t* source, const uint8_t* destination, uint8_t next_header,
                                uint32_t l4_length);

// The IPv4 header checksum of `header_length` bytes at `header`, computed as if the checksum
// field (bytes 10..11) were zero, ready to store. `header_length` is IHL * 4 (20..60).
uint16_t ipv4_header_checksum(const uint8_t* header, size_t header_length);

}  // namespace ovl
