// The codec loops the micro benches time: the per-packet work of the data path (VXLAN encap
// and decap with the flow hash, ESP seal and open with one keyed context) on in-memory buffers,
// no I/O. Built only for the bench (binding.gyp here), never into the shipped addon.
#include <napi.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "base/flow_hash.h"
#include "base/packet_buffer.h"
#include "tunnel/esp/esp_codec.h"
#include "tunnel/vxlan_codec.h"
#include "wire/ethernet.h"

namespace {

template <typename Fn>
auto guarded(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& failure) {
    throw Napi::Error::New(env, failure.what());
  }
}

// Builds `count` Ethernet/IPv4/UDP frames of `size` bytes, each its own flow.
void fill_frames(ovl::BufferPool& pool, uint32_t size) {
  std::mt19937 random(42);
  for (size_t i = 0; i < pool.size(); i++) {
    ovl::PacketBuffer& buffer = pool[i];
    buffer.reset();
    buffer.length = size;
    uint8_t* frame = buffer.data();
    for (uint32_t b = 0; b < size; b++) frame[b] = static_cast<uint8_t>(random());
    frame[0] = 0x02;  // unicast destination
    frame[6] = 0x02;  // unicast source
    ovl::store_be16(frame + 12, ovl::kEtherTypeIpv4);
    frame[14] = 0x45;
    frame[14 + 6] = frame[14 + 7] = 0;  // not a fragment
    frame[14 + 9] = 17;
  }
}

// Times the per-packet codec work of the data path on in-memory buffers: no I/O.
Napi::Value CodecBench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string op = info[0].As<Napi::String>().Utf8Value();
  const uint32_t size = info[1].As<Napi::Number>().Uint32Value();
  const uint32_t packets = info[2].As<Napi::Number>().Uint32Value();
  const uint32_t rounds = info[3].As<Napi::Number>().Uint32Value();
  if (size < 64 || size > 9000 || packets == 0 || rounds == 0) throw Napi::RangeError::New(env, "bad codecBench arguments");
  if (packets > 65536 || rounds > 100000000) throw Napi::RangeError::New(env, "codecBench: at most 65536 packets and 1e8 rounds");
  // Room for the largest header and trailer any op adds (ESP: 16 in front, up to 21 behind).
  ovl::BufferPool pool = guarded(env, [&] { return ovl::BufferPool(packets, size + 64); });
  fill_frames(pool, size);
  uint64_t sink = 0;
  std::chrono::steady_clock::time_point start;
  if (op == "vxlan-encap") {
    start = std::chrono::steady_clock::now();
    for (uint32_t r = 0; r < rounds; r++) {
      for (size_t i = 0; i < pool.size(); i++) {
        ovl::PacketBuffer& buffer = pool[i];
        buffer.offset = ovl::kHeadroom;
        buffer.length = size;
        const uint32_t hash = ovl::ethernet_flow_hash(buffer.data(), buffer.length);
        ovl::vxlan_encode(buffer.push_front(ovl::kVxlanHeaderSize), 42);
        sink += ovl::port_from_hash(hash, ovl::kEntropyPortLow, ovl::kEntropyPortHigh);
      }
    }
  } else if (op == "vxlan-decap") {
    for (size_t i = 0; i < pool.size(); i++) ovl::vxlan_encode(pool[i].push_front(ovl::kVxlanHeaderSize), 42);
    start = std::chrono::steady_clock::now();
    for (uint32_t r = 0; r < rounds; r++) {
      for (size_t i = 0; i < pool.size(); i++) {
        ovl::PacketBuffer& buffer = pool[i];
        buffer.offset = ovl::kHeadroom - ovl::kVxlanHeaderSize;
        buffer.length = size + ovl::kVxlanHeaderSize;
        if (ovl::vxlan_decode(buffer.data(), buffer.length, 42) != ovl::VxlanStatus::ok) continue;
        buffer.pull_front(ovl::kVxlanHeaderSize);
        sink += ovl::mac_is_valid_source(ovl::eth_source(buffer.data())) + ovl::mac_key(ovl::eth_source(buffer.data()));
      }
    }
  } else if (op.rfind("esp-seal:", 0) == 0 || op.rfind("esp-open:", 0) == 0) {
    // ESP with one keyed context, as a worker holds it per SA: "esp-seal:aes-256-gcm", ...
    const auto cipher = ovl::parse_esp_cipher(op.substr(9));
    if (!cipher) throw Napi::TypeError::New(env, "unknown cipher in " + op);
    std::vector<uint8_t> key(ovl::esp_key_material_size(*cipher));
    for (size_t i = 0; i < key.size(); i++) key[i] = static_cast<uint8_t>(i * 7 + 1);
    ovl::EspAead aead;
    guarded(env, [&] { aead.set_key(*cipher, key.data(), key.size()); });
    const bool seal = op[4] == 's';
    uint64_t sequence = 0;
    std::vector<std::vector<uint8_t>> sealed;
    if (!seal) {
      // Every packet sealed once up front; each round opens copies of them.
      for (size_t i = 0; i < pool.size(); i++) {
        ovl::PacketBuffer& buffer = pool[i];
        buffer.offset = ovl::kHeadroom;
        buffer.length = size;
        const size_t n = ovl::esp_encode(aead, 0x1001, ++sequence, true, ovl::kEspNextHeaderIpv4,
                                         buffer.push_front(ovl::kEspPrefixSize), size);
        sealed.emplace_back(buffer.data(), buffer.data() + n);
      }
    }
    start = std::chrono::steady_clock::now();
    for (uint32_t r = 0; r < rounds; r++) {
      for (size_t i = 0; i < pool.size(); i++) {
        ovl::PacketBuffer& buffer = pool[i];
        buffer.offset = ovl::kHeadroom;
        if (seal) {
          buffer.length = size;
          sink += ovl::esp_encode(aead, 0x1001, ++sequence, true, ovl::kEspNextHeaderIpv4,
                                  buffer.push_front(ovl::kEspPrefixSize), size);
        } else {
          std::memcpy(buffer.data(), sealed[i].data(), sealed[i].size());
          const uint64_t number = i + 1;
          sink += ovl::esp_open(aead, true, static_cast<uint32_t>(number >> 32), buffer.data(), sealed[i].size()) ==
                  ovl::EspStatus::ok;
        }
      }
    }
  } else {
    throw Napi::TypeError::New(env, "unknown codecBench op: " + op);
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  Napi::Object result = Napi::Object::New(env);
  result.Set("packets", static_cast<double>(packets) * rounds);
  result.Set("nanoseconds", static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
  result.Set("checksum", static_cast<double>(sink & 0xffffffff));
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("codecBench", Napi::Function::New(env, CodecBench, "codecBench"));
  return exports;
}

}  // namespace

NODE_API_MODULE(codec_bench, Init)
