// Node-API binding: converts values and owns lifetimes, nothing else. All logic is in
// native/core; all validation that can be done in TypeScript is done there first.
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>

#include "base/socket_address.h"
#include "base/stats_layout.h"
#include "forwarder.h"
#include "tunnel/esp/esp_aead.h"
#include "system/kernel_routes.h"
#include "system/link_config.h"
#include "system/netns.h"
#include "system/privileges.h"
#include "system/sys_error.h"
#include "tunnel/tunnel.h"
#include "underlay/control_channel.h"
#include "wire/ethernet.h"

namespace {

// Shapes a core exception like Node's own errors: system errors carry code, errno, syscall.
Napi::Error to_js_error(Napi::Env env, const std::exception& failure) {
  if (const auto* system = dynamic_cast<const ovl::SystemError*>(&failure)) {
    const char* code = uv_err_name(-system->error_number());
    Napi::Error error = Napi::Error::New(env, std::string(code) + ": " + system->what());
    error.Set("code", Napi::String::New(env, code));
    error.Set("errno", Napi::Number::New(env, -system->error_number()));
    error.Set("syscall", Napi::String::New(env, system->syscall()));
    if (!system->detail().empty()) error.Set("detail", Napi::String::New(env, system->detail()));
    return error;
  }
  if (dynamic_cast<const ovl::InvalidArgument*>(&failure)) {
    Napi::Error error = Napi::TypeError::New(env, failure.what());
    error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
    return error;
  }
  if (dynamic_cast<const ovl::InvalidState*>(&failure)) {
    Napi::Error error = Napi::Error::New(env, failure.what());
    error.Set("code", Napi::String::New(env, "ERR_INVALID_STATE"));
    return error;
  }
  return Napi::Error::New(env, failure.what());
}

template <typename Fn>
auto guarded(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& failure) {
    throw to_js_error(env, failure);
  }
}

Napi::Object object_at(const Napi::Object& parent, const char* key) {
  Napi::Value value = parent.Get(key);
  if (!value.IsObject()) throw Napi::TypeError::New(parent.Env(), std::string("options.") + key + " must be an object");
  return value.As<Napi::Object>();
}

std::string string_at(const Napi::Object& object, const char* key) {
  Napi::Value value = object.Get(key);
  if (!value.IsString()) throw Napi::TypeError::New(object.Env(), std::string(key) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

uint32_t uint_at(const Napi::Object& object, const char* key) {
  Napi::Value value = object.Get(key);
  if (!value.IsNumber()) throw Napi::TypeError::New(object.Env(), std::string(key) + " must be a number");
  const double number = value.As<Napi::Number>().DoubleValue();
  if (number < 0 || number > 4294967295.0 || number != static_cast<double>(static_cast<uint32_t>(number))) {
    throw Napi::RangeError::New(object.Env(), std::string(key) + " must be an unsigned 32-bit integer");
  }
  return static_cast<uint32_t>(number);
}

bool bool_at(const Napi::Object& object, const char* key) {
  Napi::Value value = object.Get(key);
  if (!value.IsBoolean()) throw Napi::TypeError::New(object.Env(), std::string(key) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

bool is_given(const Napi::Object& object, const char* key) {
  if (!object.Has(key)) return false;
  const Napi::Value value = object.Get(key);
  return !value.IsUndefined() && !value.IsNull();
}

bool optional_bool_at(const Napi::Object& object, const char* key, bool fallback) {
  return is_given(object, key) ? bool_at(object, key) : fallback;
}

ovl::MacKey mac_from(Napi::Env env, const std::string& text) {
  const auto mac = ovl::parse_mac(text);
  if (!mac) throw Napi::TypeError::New(env, "not a MAC address: " + text);
  return *mac;
}

// An SA from { spi, key: hex }. The message of a bad key never shows the key.
ovl::EspSaSpec sa_from(Napi::Env env, const Napi::Object& object) {
  ovl::EspSaSpec spec;
  spec.spi = uint_at(object, "spi");
  const std::string hex = string_at(object, "key");
  if (hex.size() % 2 != 0) throw Napi::TypeError::New(env, "SA key must be an even number of hex digits");
  auto digit = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw Napi::TypeError::New(env, "SA key must be hex digits");
  };
  spec.key.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) spec.key.push_back(static_cast<uint8_t>(digit(hex[i]) << 4 | digit(hex[i + 1])));
  if (is_given(object, "cipher")) {
    spec.cipher = ovl::parse_esp_cipher(string_at(object, "cipher"));
    if (!spec.cipher) throw Napi::TypeError::New(env, "SA cipher must be 'aes-128-gcm', 'aes-256-gcm' or 'chacha20-poly1305'");
  }
  if (is_given(object, "esn")) spec.esn = object.Get("esn").ToBoolean().Value();
  return spec;
}

ovl::ForwarderOptions parse_options(const Napi::Object& options) {
  Napi::Env env = options.Env();
  ovl::ForwarderOptions out;
  out.netns = string_at(options, "netns");
  const Napi::Object device = object_at(options, "device");
  const std::string device_type = string_at(device, "type");
  if (device_type == "tap") {
    out.layer = ovl::DeviceLayer::ethernet;
  } else if (device_type == "tun") {
    out.layer = ovl::DeviceLayer::ip;
    out.device_kind = ovl::DeviceKind::tun;
  } else if (device_type == "packet") {
    out.layer = ovl::DeviceLayer::ethernet;
    out.device_kind = ovl::DeviceKind::packet;
    out.packet_interface = string_at(device, "interface");
  } else {
    throw Napi::TypeError::New(env, "device.type must be 'tap', 'tun' or 'packet'");
  }
  out.device_name = string_at(device, "name");
  out.mtu = static_cast<int>(uint_at(device, "mtu"));
  const std::string mac = string_at(device, "mac");
  if (!mac.empty()) out.mac = mac_from(env, mac);
  const Napi::Value addresses = device.Get("addresses");
  if (!addresses.IsArray()) throw Napi::TypeError::New(env, "device.addresses must be an array");
  const auto list = addresses.As<Napi::Array>();
  for (uint32_t i = 0; i < list.Length(); i++) {
    const Napi::Object entry = list.Get(i).As<Napi::Object>();
    out.addresses.push_back({string_at(entry, "address"), static_cast<int>(uint_at(entry, "prefixLength"))});
  }
  const Napi::Object encap = object_at(options, "encap");
  const std::string encap_type = string_at(encap, "type");
  const ovl::TunnelModeInfo* mode = ovl::tunnel_mode_by_name(encap_type);
  if (mode == nullptr) throw Napi::TypeError::New(env, "encap.type must be 'vxlan', 'geneve', 'gre', 'gre-udp', 'ipip' or 'esp'");
  out.mode = mode->mode;
  // Options only some modes take: given to the others they are ignored (TypeScript refuses them).
  if (is_given(encap, "key")) out.gre.key = uint_at(encap, "key");
  out.gre.checksum = optional_bool_at(encap, "checksum", false);
  out.gre.sequence = optional_bool_at(encap, "sequence", false);
  if (is_given(encap, "cipher")) {
    const auto cipher = ovl::parse_esp_cipher(string_at(encap, "cipher"));
    if (!cipher) throw Napi::TypeError::New(env, "encap.cipher must be 'aes-128-gcm', 'aes-256-gcm' or 'chacha20-poly1305'");
    out.esp_cipher = *cipher;
  }
  out.esp_udp = optional_bool_at(encap, "udp", true);
  out.esp_esn = optional_bool_at(encap, "esn", true);
  if (encap.Has("ttl")) out.outer_ttl = static_cast<uint8_t>(uint_at(encap, "ttl"));
  if (options.Has("mssClamp")) {
    const Napi::Value clamp = options.Get("mssClamp");
    if (clamp.IsString() && clamp.As<Napi::String>().Utf8Value() == "auto") {
      out.mss_clamp = -1;
    } else if (clamp.IsNumber()) {
      out.mss_clamp = static_cast<int>(clamp.As<Napi::Number>().Uint32Value());
    } else if (!clamp.IsNull() && !clamp.IsUndefined()) {
      throw Napi::TypeError::New(env, "mssClamp must be 'auto', a number or null");
    }
  }
  out.vni = uint_at(encap, "vni");
  out.port = static_cast<uint16_t>(uint_at(encap, "port"));
  const Napi::Object underlay = object_at(options, "underlay");
  out.local = string_at(underlay, "local");
  out.source_ports = uint_at(underlay, "sourcePorts");
  out.udp_checksum = bool_at(underlay, "udpChecksum");
  out.workers = uint_at(options, "workers");
  out.batch_size = uint_at(options, "batchSize");
  const Napi::Object fdb = object_at(options, "fdb");
  out.learning = bool_at(fdb, "learning");
  out.ageing_seconds = uint_at(fdb, "ageingSeconds");
  out.fdb_max_entries = uint_at(fdb, "maxEntries");
  out.peer_slots = uint_at(options, "peerSlots");
  if (options.Has("busyPollMicroseconds")) out.busy_poll_us = uint_at(options, "busyPollMicroseconds");
  out.identity_switch = optional_bool_at(options, "identitySwitch", false);
  const Napi::Value cpus = options.Get("cpuAffinity");
  if (!cpus.IsUndefined() && !cpus.IsArray()) throw Napi::TypeError::New(env, "cpuAffinity must be an array");
  for (uint32_t i = 0; cpus.IsArray() && i < cpus.As<Napi::Array>().Length(); i++) {
    out.cpu_affinity.push_back(static_cast<int>(cpus.As<Napi::Array>().Get(i).As<Napi::Number>().Int32Value()));
  }
  const Napi::Object offloads = object_at(options, "offloads");
  out.tso = bool_at(offloads, "tso");
  out.udp_gso = bool_at(offloads, "udpGso");
  out.udp_gro = bool_at(offloads, "udpGro");
  out.uring_writes = !offloads.Has("uringWrites") || bool_at(offloads, "uringWrites");
  return out;
}

uint16_t port_arg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const Napi::Value value = info[index];
  const double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
  if (!(number >= 0 && number <= 65535 && number == static_cast<double>(static_cast<uint16_t>(number)))) {
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a port number (0-65535)");
  }
  return static_cast<uint16_t>(number);
}

// The sink of openControl: each datagram is copied into the bounded queue of a thread-safe
// function (at most kMaxQueued datagrams and kMaxQueuedBytes bytes), which calls onDatagram on
// the JavaScript thread. A full queue refuses at once (the channel counts controlQueueFull);
// nothing waits. It does not keep the event loop alive, as the forwarder does not.
//
// Lifetimes: `mutex_` guards `tsfn_`, which is null once Close() released it or Node finalized
// it (at environment teardown too); deliver() never calls a released or finalized function.
class JsControlSink final : public ovl::ControlSink {
 public:
  static constexpr size_t kMaxQueued = 1024;
  static constexpr size_t kMaxQueuedBytes = 8 << 20;

  static std::shared_ptr<JsControlSink> Create(Napi::Env env, Napi::Function callback) {
    std::shared_ptr<JsControlSink> sink(new JsControlSink());
    // Node's finalizer holds a reference, so that the queue can be emptied after the forwarder let go.
    auto* holder = new std::shared_ptr<JsControlSink>(sink);
    napi_value name;
    napi_create_string_utf8(env, "overlayfwd.control", NAPI_AUTO_LENGTH, &name);
    const napi_status status = napi_create_threadsafe_function(env, callback, nullptr, name, kMaxQueued, 1, holder,
                                                               Finalize, sink.get(), CallJs, &sink->tsfn_);
    if (status != napi_ok) {
      delete holder;
      throw Napi::Error::New(env, "openControl: napi_create_threadsafe_function failed");
    }
    napi_unref_threadsafe_function(env, sink->tsfn_);
    return sink;
  }

  bool deliver(uint16_t local_port, const sockaddr* source, const uint8_t* data, size_t length) override {
    if (length > ovl::kMaxControlDatagram || !delivering_.load(std::memory_order_relaxed)) return false;
    std::lock_guard<std::mutex> lock(mutex_);
    if (tsfn_ == nullptr || queued_bytes_.load(std::memory_order_relaxed) + length > kMaxQueuedBytes) return false;
    try {
      auto item = std::make_unique<Item>();
      item->local_port = local_port;
      item->source.length = source->sa_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
      std::memcpy(&item->source.storage, source, item->source.length);
      item->data.assign(data, data + length);
      queued_bytes_.fetch_add(length, std::memory_order_relaxed);
      if (napi_call_threadsafe_function(tsfn_, item.get(), napi_tsfn_nonblocking) != napi_ok) {
        queued_bytes_.fetch_sub(length, std::memory_order_relaxed);
        return false;
      }
      item.release();
      return true;
    } catch (const std::bad_alloc&) {
      return false;
    }
  }

  // JavaScript thread: nothing more reaches onDatagram, not even what is queued.
  void Close() {
    delivering_.store(false, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mutex_);
    if (tsfn_ == nullptr) return;
    napi_release_threadsafe_function(tsfn_, napi_tsfn_abort);
    tsfn_ = nullptr;
  }

 private:
  struct Item {
    uint16_t local_port = 0;
    ovl::SocketAddress source;
    std::vector<uint8_t> data;
  };

  JsControlSink() = default;

  static void CallJs(napi_env env, napi_value callback, void* context, void* data) {
    std::unique_ptr<Item> item(static_cast<Item*>(data));
    // Emptying the queue after finalization: the sink may be gone, and there is no JavaScript.
    if (env == nullptr) return;
    auto* sink = static_cast<JsControlSink*>(context);
    sink->queued_bytes_.fetch_sub(item->data.size(), std::memory_order_relaxed);
    if (!sink->delivering_.load(std::memory_order_relaxed) || callback == nullptr) return;
    Napi::Env js(env);
    try {
      Napi::HandleScope scope(js);
      Napi::Object datagram = Napi::Object::New(js);
      datagram.Set("localPort", Napi::Number::New(js, item->local_port));
      datagram.Set("address", Napi::String::New(js, ovl::address_literal(item->source.get())));
      datagram.Set("port", Napi::Number::New(js, item->source.port()));
      datagram.Set("data", Napi::Buffer<uint8_t>::Copy(js, item->data.data(), item->data.size()));
      Napi::Function(js, callback).Call({datagram});
    } catch (const Napi::Error& error) {
      // What onDatagram threw is an uncaught exception, as from any event listener.
      napi_fatal_exception(env, error.Value());
    }
  }

  static void Finalize(napi_env, void* finalize_data, void*) {
    auto* holder = static_cast<std::shared_ptr<JsControlSink>*>(finalize_data);
    {
      std::lock_guard<std::mutex> lock((*holder)->mutex_);
      (*holder)->tsfn_ = nullptr;
      (*holder)->delivering_.store(false, std::memory_order_relaxed);
    }
    delete holder;
  }

  std::mutex mutex_;
  napi_threadsafe_function tsfn_ = nullptr;
  std::atomic<bool> delivering_{true};
  std::atomic<size_t> queued_bytes_{0};
};

// [{ address, family: 4 | 6, error? }] of Forwarder::announce_*.
Napi::Array announce_results(Napi::Env env, const std::vector<ovl::AnnounceResult>& results) {
  Napi::Array out = Napi::Array::New(env, results.size());
  for (uint32_t i = 0; i < results.size(); i++) {
    Napi::Object entry = Napi::Object::New(env);
    entry.Set("address", results[i].address);
    entry.Set("family", results[i].family == AF_INET6 ? 6 : results[i].family == AF_INET ? 4 : 0);
    if (!results[i].error.empty()) entry.Set("error", results[i].error);
    out.Set(i, entry);
  }
  return out;
}

// watchAddresses: the forwarder's address watch descriptor polled on the JavaScript thread's
// own event loop (unreferenced, like the forwarder), so no thread is needed for it. The handle
// is freed by libuv's close callback; Stop() may run any number of times.
class AddressPoll {
 public:
  AddressPoll(Napi::Env env, ovl::Forwarder* forwarder, int fd, Napi::Function callback)
      : env_(env), forwarder_(forwarder), context_(env, "overlayfwd.addresses") {
    callback_ = Napi::Persistent(callback);
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok) throw Napi::Error::New(env, "watchAddresses: no event loop");
    handle_ = new uv_poll_t;
    if (uv_poll_init(loop, handle_, fd) != 0) {
      delete handle_;
      handle_ = nullptr;
      throw Napi::Error::New(env, "watchAddresses: uv_poll_init failed");
    }
    handle_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(handle_));
    uv_poll_start(handle_, UV_READABLE, OnReadable);
  }
  AddressPoll(const AddressPoll&) = delete;
  AddressPoll& operator=(const AddressPoll&) = delete;
  ~AddressPoll() { Stop(); }

  // Before the forwarder closes the descriptor.
  void Stop() {
    if (handle_ == nullptr) return;
    uv_poll_stop(handle_);
    uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    handle_ = nullptr;
  }

 private:
  static void OnReadable(uv_poll_t* handle, int status, int) {
    auto* self = static_cast<AddressPoll*>(handle->data);
    if (status < 0 || self == nullptr || self->handle_ == nullptr) return;
    std::vector<ovl::AnnounceResult> results;
    try {
      results = self->forwarder_->announce_added_addresses();
    } catch (const std::exception& failure) {
      results.push_back({"", 0, failure.what()});
    }
    if (results.empty()) return;
    Napi::HandleScope scope(self->env_);
    try {
      self->callback_.MakeCallback(self->env_.Global(), {announce_results(self->env_, results)}, self->context_);
    } catch (const Napi::Error& error) {
      napi_fatal_exception(self->env_, error.Value());
    }
  }

  Napi::Env env_;
  ovl::Forwarder* forwarder_;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
  uv_poll_t* handle_ = nullptr;
};

class ForwarderWrap : public Napi::ObjectWrap<ForwarderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Forwarder",
                       {
                           InstanceAccessor<&ForwarderWrap::Counters>("counters"),
                           InstanceAccessor<&ForwarderWrap::Device>("device"),
                           InstanceAccessor<&ForwarderWrap::Offloads>("offloads"),
                           InstanceAccessor<&ForwarderWrap::Failed>("failed"),
                           InstanceMethod<&ForwarderWrap::SetPeers>("setPeers"),
                           InstanceMethod<&ForwarderWrap::LearnedFdb>("learnedFdb"),
                           InstanceMethod<&ForwarderWrap::RecentDrops>("recentDrops"),
                           InstanceMethod<&ForwarderWrap::EspStatus>("espStatus"),
                           InstanceMethod<&ForwarderWrap::OpenControl>("openControl"),
                           InstanceMethod<&ForwarderWrap::SendControl>("sendControl"),
                           InstanceMethod<&ForwarderWrap::CloseControl>("closeControl"),
                           InstanceMethod<&ForwarderWrap::AnnounceAddresses>("announceAddresses"),
                           InstanceMethod<&ForwarderWrap::WatchAddresses>("watchAddresses"),
                           InstanceMethod<&ForwarderWrap::Routes>("routes"),
                           InstanceMethod<&ForwarderWrap::Close>("close"),
                       });
  }

  explicit ForwarderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ForwarderWrap>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
    const ovl::ForwarderOptions options = parse_options(info[0].As<Napi::Object>());
    forwarder_ = guarded(env, [&] { return std::make_unique<ovl::Forwarder>(options); });

    // The counters block outlives the forwarder for as long as JavaScript holds the array.
    // V8 is told about the block so that closed forwarders' blocks count toward GC pressure.
    auto* keep_alive = new std::shared_ptr<ovl::StatsBlock>(forwarder_->stats());
    ovl::StatsBlock& block = **keep_alive;
    Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(block.bytes()));
    Napi::ArrayBuffer memory = Napi::ArrayBuffer::New(
        env, block.data(), block.bytes(),
        [](Napi::Env finalizer_env, void*, std::shared_ptr<ovl::StatsBlock>* hint) {
          Napi::MemoryManagement::AdjustExternalMemory(finalizer_env, -static_cast<int64_t>((*hint)->bytes()));
          delete hint;
        },
        keep_alive);
    counters_ = Napi::Persistent(Napi::TypedArrayOf<uint64_t>::New(env, block.size(), memory, 0, napi_biguint64_array));
  }

  ~ForwarderWrap() override {
    address_poll_.reset();
    if (forwarder_) forwarder_->close();
    if (control_sink_) control_sink_->Close();
  }

 private:
  Napi::Value Counters(const Napi::CallbackInfo&) { return counters_.Value(); }

  Napi::Value Device(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const ovl::DeviceInfo& device = forwarder_->device();
    Napi::Object out = Napi::Object::New(env);
    out.Set("name", device.name);
    out.Set("ifindex", device.ifindex);
    out.Set("mac", ovl::format_mac(device.mac));
    out.Set("mtu", device.mtu);
    return out;
  }

  Napi::Value Failed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), forwarder_->failed()); }

  Napi::Value Offloads(const Napi::CallbackInfo& info) {
    const ovl::OffloadState& state = forwarder_->offloads();
    Napi::Object out = Napi::Object::New(info.Env());
    out.Set("tso", state.tso);
    out.Set("udpGso", state.udp_gso);
    out.Set("udpGro", state.udp_gro);
    out.Set("uringWrites", state.uring_writes);
    return out;
  }

  Napi::Value SetPeers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsArray()) throw Napi::TypeError::New(env, "peers must be an array");
    const auto list = info[0].As<Napi::Array>();
    std::vector<ovl::PeerSpec> peers;
    for (uint32_t i = 0; i < list.Length(); i++) {
      if (!list.Get(i).IsObject()) throw Napi::TypeError::New(env, "peer must be an object");
      const Napi::Object entry = list.Get(i).As<Napi::Object>();
      ovl::PeerSpec spec;
      spec.slot = uint_at(entry, "slot");
      const std::string address = string_at(entry, "address");
      const auto endpoint = ovl::parse_socket_address(address, static_cast<uint16_t>(uint_at(entry, "port")));
      if (!endpoint) throw Napi::TypeError::New(env, "peer address is not an IP address: " + address);
      spec.endpoint = *endpoint;
      const Napi::Value macs = entry.Get("macs");
      if (!macs.IsArray()) throw Napi::TypeError::New(env, "peer.macs must be an array");
      const auto mac_list = macs.As<Napi::Array>();
      for (uint32_t m = 0; m < mac_list.Length(); m++) {
        spec.macs.push_back(mac_from(env, mac_list.Get(m).As<Napi::String>().Utf8Value()));
      }
      const Napi::Value allowed = entry.Get("allowedIps");
      if (!allowed.IsUndefined()) {
        if (!allowed.IsArray()) throw Napi::TypeError::New(env, "peer.allowedIps must be an array");
        const auto prefixes = allowed.As<Napi::Array>();
        spec.allowed_ips.reserve(prefixes.Length());
        for (uint32_t p = 0; p < prefixes.Length(); p++) {
          const std::string text = prefixes.Get(p).As<Napi::String>().Utf8Value();
          const auto prefix = ovl::parse_route_prefix(text, 0);
          if (!prefix) throw Napi::TypeError::New(env, "not an IP prefix: " + text);
          spec.allowed_ips.push_back(*prefix);
        }
      }
      const Napi::Value sa = entry.Get("sa");
      if (!sa.IsUndefined() && !sa.IsNull()) {
        if (!sa.IsObject()) throw Napi::TypeError::New(env, "peer.sa must be an object");
        const Napi::Object sa_object = sa.As<Napi::Object>();
        // IKE installs a new inbound SA before its outbound one: `out` may be absent for a while.
        if (is_given(sa_object, "out")) spec.sa_out_spec = sa_from(env, object_at(sa_object, "out"));
        const Napi::Value inbound = sa_object.Get("in");
        if (!inbound.IsArray()) throw Napi::TypeError::New(env, "peer.sa.in must be an array");
        const auto list_in = inbound.As<Napi::Array>();
        for (uint32_t k = 0; k < list_in.Length(); k++) {
          if (!list_in.Get(k).IsObject()) throw Napi::TypeError::New(env, "peer.sa.in entries must be objects");
          spec.sa_in_specs.push_back(sa_from(env, list_in.Get(k).As<Napi::Object>()));
        }
      }
      guarded(env, [&] { peers.push_back(std::move(spec)); });
    }
    guarded(env, [&] { forwarder_->set_peers(peers); });
    return env.Undefined();
  }

  // [{ slot, spi, sequence (bigint), nearingLimit, exhausted }] for every peer's outbound SA.
  Napi::Value EspStatus(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto entries = guarded(env, [&] { return forwarder_->esp_outbound_status(); });
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (uint32_t i = 0; i < entries.size(); i++) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("slot", entries[i].slot);
      entry.Set("spi", entries[i].spi);
      entry.Set("sequence", Napi::BigInt::New(env, entries[i].sequence));
      entry.Set("nearingLimit", entries[i].nearing_limit);
      entry.Set("exhausted", entries[i].exhausted);
      out.Set(i, entry);
    }
    return out;
  }

  Napi::Value LearnedFdb(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto entries = guarded(env, [&] { return forwarder_->learned_fdb(); });
    Napi::Array out = Napi::Array::New(env, entries.size());
    for (uint32_t i = 0; i < entries.size(); i++) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("mac", ovl::format_mac(entries[i].mac));
      entry.Set("slot", entries[i].slot);
      entry.Set("ageSeconds", entries[i].age_seconds);
      out.Set(i, entry);
    }
    return out;
  }

  // recentDrops(since?: number[]): { records, cursor, missed } (see native.ts), copied out of the
  // workers' drop rings.
  Napi::Value RecentDrops(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<uint64_t> since;
    if (info.Length() > 0 && !info[0].IsUndefined() && !info[0].IsNull()) {
      if (!info[0].IsArray()) throw Napi::TypeError::New(env, "since must be an array of sequence numbers");
      const auto list = info[0].As<Napi::Array>();
      for (uint32_t w = 0; w < list.Length(); w++) {
        const Napi::Value value = list.Get(w);
        const double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : -1;
        if (!(number >= 0 && number <= 9007199254740991.0 && number == static_cast<double>(static_cast<uint64_t>(number)))) {
          throw Napi::RangeError::New(env, "since[" + std::to_string(w) + "] must be a sequence number (a non-negative integer)");
        }
        since.push_back(static_cast<uint64_t>(number));
      }
    }
    const ovl::DropReadout readout = forwarder_->recent_drops(since);
    static const char* const kLayers[] = {"none", "underlay", "outerIp", "device"};
    Napi::Array records = Napi::Array::New(env, readout.entries.size());
    for (uint32_t i = 0; i < readout.entries.size(); i++) {
      const ovl::DropRecord& r = readout.entries[i].entry.record;
      Napi::Object out = Napi::Object::New(env);
      out.Set("worker", readout.entries[i].worker);
      out.Set("sequence", static_cast<double>(readout.entries[i].entry.sequence));
      out.Set("timeNs", Napi::BigInt::New(env, r.time_ns));
      const char* reason = ovl::counter_name(r.reason);
      out.Set("reason", reason ? reason : "");
      out.Set("slot", r.slot == ovl::WorkerStats::kNoPeer ? -1.0 : static_cast<double>(r.slot));
      out.Set("packets", r.packets);
      out.Set("length", r.length);
      out.Set("layer", r.layer < 4 ? kLayers[r.layer] : "none");
      out.Set("direction", r.direction == static_cast<uint8_t>(ovl::DropDirection::tx) ? "tx" : "rx");
      out.Set("protocol", r.protocol);
      char address[INET6_ADDRSTRLEN] = "";
      if (r.family == AF_INET || r.family == AF_INET6) inet_ntop(r.family, r.remote_address, address, sizeof address);
      out.Set("remoteAddress", address);
      out.Set("remotePort", r.remote_port);
      out.Set("localPort", r.local_port);
      out.Set("data", Napi::Buffer<uint8_t>::Copy(env, r.bytes, std::min<uint32_t>(r.captured, ovl::kDropCaptureBytes)));
      records.Set(i, out);
    }
    Napi::Array cursor = Napi::Array::New(env, readout.cursor.size());
    for (uint32_t w = 0; w < readout.cursor.size(); w++) cursor.Set(w, static_cast<double>(readout.cursor[w]));
    Napi::Object result = Napi::Object::New(env);
    result.Set("records", records);
    result.Set("cursor", cursor);
    result.Set("missed", static_cast<double>(readout.missed));
    return result;
  }

  // openControl({ ikePort, onDatagram }).
  Napi::Value OpenControl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) throw Napi::TypeError::New(env, "openControl options must be an object");
    const Napi::Object options = info[0].As<Napi::Object>();
    const uint32_t ike_port = uint_at(options, "ikePort");
    if (ike_port > 65535) throw Napi::RangeError::New(env, "ikePort must be a port number (0-65535)");
    const Napi::Value callback = options.Get("onDatagram");
    if (!callback.IsFunction()) throw Napi::TypeError::New(env, "onDatagram must be a function");
    auto sink = JsControlSink::Create(env, callback.As<Napi::Function>());
    try {
      guarded(env, [&] { forwarder_->open_control(sink, static_cast<uint16_t>(ike_port)); });
    } catch (...) {
      sink->Close();
      throw;
    }
    control_sink_ = std::move(sink);
    return env.Undefined();
  }

  // sendControl(localPort, address, port, data).
  Napi::Value SendControl(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const uint16_t local_port = port_arg(info, 0, "localPort");
    if (!info[1].IsString()) throw Napi::TypeError::New(env, "address must be a string");
    const std::string address = info[1].As<Napi::String>().Utf8Value();
    const uint16_t port = port_arg(info, 2, "port");
    if (!info[3].IsTypedArray() || info[3].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "data must be a Uint8Array or a Buffer");
    }
    const auto data = info[3].As<Napi::Uint8Array>();
    const auto to = ovl::parse_socket_address(address, port);
    if (!to) throw Napi::TypeError::New(env, "not an IP address: " + address);
    guarded(env, [&] { forwarder_->send_control(local_port, *to, data.Data(), data.ByteLength()); });
    return env.Undefined();
  }

  Napi::Value CloseControl(const Napi::CallbackInfo& info) {
    forwarder_->close_control();
    if (control_sink_) control_sink_->Close();
    return info.Env().Undefined();
  }

  // announceAddresses(): [{ address, family, error? }], one per address of the device.
  Napi::Value AnnounceAddresses(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto results = guarded(env, [&] { return forwarder_->announce_addresses(); });
    return announce_results(env, results);
  }

  // watchAddresses(onAnnounced): from now on each address the device gains is announced, and
  // onAnnounced gets the results. False without a TAP device (nothing to watch).
  Napi::Value WatchAddresses(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "onAnnounced must be a function");
    const int fd = guarded(env, [&] { return forwarder_->watch_addresses(); });
    if (fd < 0) return Napi::Boolean::New(env, false);
    address_poll_ = std::make_unique<AddressPoll>(env, forwarder_.get(), fd, info[0].As<Napi::Function>());
    return Napi::Boolean::New(env, true);
  }

  // routes('add' | 'remove', prefixes, table, metric): one entry per prefix, 0 when the kernel
  // accepted it, else { code, errno, message }, message being the kernel's own when it gave one.
  Napi::Value Routes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throw Napi::TypeError::New(env, "op must be 'add' or 'remove'");
    const std::string op_name = info[0].As<Napi::String>().Utf8Value();
    if (op_name != "add" && op_name != "remove") throw Napi::TypeError::New(env, "op must be 'add' or 'remove'");
    if (!info[1].IsArray()) throw Napi::TypeError::New(env, "prefixes must be an array");
    const auto list = info[1].As<Napi::Array>();
    std::vector<ovl::KernelRoute> routes;
    routes.reserve(list.Length());
    for (uint32_t i = 0; i < list.Length(); i++) {
      const Napi::Value item = list.Get(i);
      const std::string text = item.IsString() ? item.As<Napi::String>().Utf8Value() : std::string();
      const auto route = ovl::parse_kernel_route(text);
      if (!route) throw Napi::TypeError::New(env, "not an IP prefix: " + text);
      routes.push_back(*route);
    }
    auto number = [&](size_t index, const char* name) -> uint32_t {
      const double value = info[index].IsNumber() ? info[index].As<Napi::Number>().DoubleValue() : -1;
      if (!(value >= 0 && value <= 4294967295.0 && value == static_cast<double>(static_cast<uint32_t>(value)))) {
        throw Napi::RangeError::New(env, std::string(name) + " must be an unsigned 32-bit integer");
      }
      return static_cast<uint32_t>(value);
    };
    const uint32_t table = number(2, "table");
    const uint32_t metric = number(3, "metric");
    const ovl::RouteOp op = op_name == "add" ? ovl::RouteOp::add : ovl::RouteOp::remove;
    const auto results = guarded(env, [&] { return forwarder_->apply_routes(op, routes, table, metric); });
    Napi::Array out = Napi::Array::New(env, results.size());
    for (uint32_t i = 0; i < results.size(); i++) {
      if (results[i].error == 0) {
        out.Set(i, Napi::Number::New(env, 0));
        continue;
      }
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("code", uv_err_name(-results[i].error));
      entry.Set("errno", -results[i].error);
      entry.Set("message", results[i].message.empty() ? std::string(std::strerror(results[i].error)) : results[i].message);
      out.Set(i, entry);
    }
    return out;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    address_poll_.reset();
    forwarder_->close();
    if (control_sink_) control_sink_->Close();
    return info.Env().Undefined();
  }

  std::unique_ptr<ovl::Forwarder> forwarder_;
  std::shared_ptr<JsControlSink> control_sink_;
  std::unique_ptr<AddressPoll> address_poll_;
  Napi::Reference<Napi::TypedArrayOf<uint64_t>> counters_;
};

Napi::Object StatsLayout(Napi::Env env) {
  Napi::Object layout = Napi::Object::New(env);
  Napi::Array names = Napi::Array::New(env, ovl::kCounterCount);
  for (uint32_t i = 0; i < ovl::kCounterCount; i++) names.Set(i, ovl::counter_name(i));
  layout.Set("counters", names);
  layout.Set("sectionSize", ovl::kSectionSize);
  layout.Set("sharedSections", ovl::StatsBlock::kSharedSections);
  return layout;
}

// The table of tunnel modes (tunnel/modes.cc), which the TypeScript side reads instead of keeping
// a copy: name, transport, default port, what it carries, header and trailer bytes.
Napi::Value TunnelModes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto& modes = ovl::tunnel_modes();
  Napi::Array rows = Napi::Array::New(env, modes.size());
  for (size_t i = 0; i < modes.size(); i++) {
    const ovl::TunnelModeInfo& mode = modes[i];
    Napi::Object row = Napi::Object::New(env);
    row.Set("name", mode.name);
    row.Set("udp", mode.udp);
    row.Set("rawIp", mode.raw_ip);
    row.Set("defaultPort", mode.default_port == 0 ? env.Null() : Napi::Number::New(env, mode.default_port));
    row.Set("carriesEthernet", mode.carries_ethernet);
    row.Set("carriesIp", mode.carries_ip);
    row.Set("headerBytes", mode.header_bytes);
    row.Set("trailerBytes", mode.trailer_bytes);
    rows.Set(static_cast<uint32_t>(i), row);
  }
  return rows;
}

// What the forwarder itself takes as a mode's overhead (for the device MTU), for the test that
// holds TypeScript's figure against it: { type, carriesIp, ipv6, key?, checksum?, sequence?, udp? }.
Napi::Value TunnelOverhead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "tunnelOverhead takes an object");
  const Napi::Object options = info[0].As<Napi::Object>();
  const std::string type = string_at(options, "type");
  ovl::TunnelConfig tunnel;
  const ovl::TunnelModeInfo* mode = ovl::tunnel_mode_by_name(type);
  if (mode == nullptr) throw Napi::TypeError::New(env, "unknown tunnel mode: " + type);
  tunnel.mode = mode->mode;
  tunnel.carries_ip = bool_at(options, "carriesIp");
  if (is_given(options, "key")) tunnel.gre.key = uint_at(options, "key");
  tunnel.gre.checksum = optional_bool_at(options, "checksum", false);
  tunnel.gre.sequence = optional_bool_at(options, "sequence", false);
  tunnel.esp_udp = optional_bool_at(options, "udp", true);
  return Napi::Number::New(env, tunnel.overhead(bool_at(options, "ipv6") ? AF_INET6 : AF_INET));
}

// interfaceWithAddress(netns, address): { name, mtu } of the interface that holds `address` in
// `netns` ('' for ours); a Node-shaped EADDRNOTAVAIL when none does.
Napi::Value InterfaceWithAddress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString()) throw Napi::TypeError::New(env, "interfaceWithAddress(netns, address) takes two strings");
  const std::string netns = info[0].As<Napi::String>().Utf8Value();
  const std::string address = info[1].As<Napi::String>().Utf8Value();
  const ovl::AddressOwner owner = guarded(env, [&] {
    ovl::AddressOwner found{"", 0};
    ovl::run_in_netns(netns, [&] { found = ovl::interface_with_address(address); });
    return found;
  });
  Napi::Object out = Napi::Object::New(env);
  out.Set("name", owner.name);
  out.Set("mtu", owner.mtu);
  return out;
}

// readProcNet(netns, name): /proc/net/NAME as `netns` ('' for ours) has it (at most 4 MiB).
Napi::Value ReadProcNet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString() || !info[1].IsString()) throw Napi::TypeError::New(env, "readProcNet(netns, name) takes two strings");
  const std::string netns = info[0].As<Napi::String>().Utf8Value();
  const std::string name = info[1].As<Napi::String>().Utf8Value();
  return Napi::String::New(env, guarded(env, [&] { return ovl::read_proc_net(netns, name, 4u << 20); }));
}

// ---------------------------------------------------------------------------------------------
// Privileges (system/privileges.h): capabilities as arrays of capability numbers.

ovl::CapabilityMask mask_from(Napi::Env env, const Napi::Value& value) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, "capabilities must be an array of capability numbers");
  const auto list = value.As<Napi::Array>();
  ovl::CapabilityMask mask = 0;
  for (uint32_t i = 0; i < list.Length(); i++) {
    const Napi::Value entry = list.Get(i);
    const double number = entry.IsNumber() ? entry.As<Napi::Number>().DoubleValue() : -1;
    if (number < 0 || number > 63 || number != static_cast<int>(number)) throw Napi::RangeError::New(env, "a capability number is 0-63");
    mask |= ovl::capability_bit(static_cast<int>(number));
  }
  return mask;
}

Napi::Array mask_to(Napi::Env env, ovl::CapabilityMask mask) {
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (int cap = 0; cap < 64; cap++) {
    if (mask & ovl::capability_bit(cap)) out.Set(n++, Napi::Number::New(env, cap));
  }
  return out;
}

// threads(): every thread of the process with its capability sets, ids and no_new_privs.
Napi::Value PrivilegeThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto threads = guarded(env, [] { return ovl::process_threads(); });
  Napi::Array out = Napi::Array::New(env, threads.size());
  for (size_t i = 0; i < threads.size(); i++) {
    const ovl::ThreadPrivileges& t = threads[i];
    Napi::Object row = Napi::Object::New(env);
    row.Set("tid", t.tid);
    row.Set("name", t.name);
    row.Set("effective", mask_to(env, t.effective));
    row.Set("permitted", mask_to(env, t.permitted));
    row.Set("inheritable", mask_to(env, t.inheritable));
    row.Set("bounding", mask_to(env, t.bounding));
    row.Set("ambient", mask_to(env, t.ambient));
    row.Set("noNewPrivs", t.no_new_privs);
    row.Set("uid", static_cast<double>(t.uid));
    row.Set("gid", static_cast<double>(t.gid));
    row.Set("blocksSignals", t.blocks_signal);
    out.Set(static_cast<uint32_t>(i), row);
  }
  return out;
}

// restrictThread(keep): the calling (main) thread keeps `keep` and nothing else.
Napi::Value RestrictThread(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ovl::CapabilityMask keep = mask_from(env, info[0]);
  guarded(env, [&] { ovl::restrict_thread(keep); });
  return env.Undefined();
}

// restrictOtherThreads(identitySwitchFollows): the ids of the threads that could not be asked to drop.
Napi::Value RestrictOtherThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const bool identity_switch_follows = info[0].ToBoolean().Value();
  const auto unreached = guarded(env, [&] { return ovl::restrict_other_threads(identity_switch_follows); });
  Napi::Array out = Napi::Array::New(env, unreached.size());
  for (size_t i = 0; i < unreached.size(); i++) out.Set(static_cast<uint32_t>(i), unreached[i]);
  return out;
}

// switchIdentity(uid, gid, keep): every thread to uid/gid, the calling one keeping `keep`.
Napi::Value SwitchIdentity(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsNumber() || !info[1].IsNumber()) throw Napi::TypeError::New(env, "switchIdentity(uid, gid, keep) takes two numbers and an array");
  const ovl::Identity identity{static_cast<uid_t>(info[0].As<Napi::Number>().Uint32Value()), static_cast<gid_t>(info[1].As<Napi::Number>().Uint32Value())};
  const ovl::CapabilityMask keep = mask_from(env, info[2]);
  guarded(env, [&] { ovl::switch_identity(identity, keep); });
  return env.Undefined();
}

// findUser(nameOrId): { uid, gid, name } through NSS, or null.
Napi::Value FindUser(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "findUser(nameOrId) takes a string");
  const auto user = guarded(env, [&] { return ovl::find_user(info[0].As<Napi::String>().Utf8Value()); });
  if (!user) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("uid", static_cast<double>(user->uid));
  out.Set("gid", static_cast<double>(user->gid));
  out.Set("name", user->name);
  return out;
}

// findGroup(nameOrId): { gid, name } through NSS, or null.
Napi::Value FindGroup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "findGroup(nameOrId) takes a string");
  const auto group = guarded(env, [&] { return ovl::find_group(info[0].As<Napi::String>().Utf8Value()); });
  if (!group) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("gid", static_cast<double>(group->gid));
  out.Set("name", group->name);
  return out;
}

Napi::Object Privileges(Napi::Env env) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("threads", Napi::Function::New(env, PrivilegeThreads, "threads"));
  out.Set("restrictThread", Napi::Function::New(env, RestrictThread, "restrictThread"));
  out.Set("restrictOtherThreads", Napi::Function::New(env, RestrictOtherThreads, "restrictOtherThreads"));
  out.Set("switchIdentity", Napi::Function::New(env, SwitchIdentity, "switchIdentity"));
  out.Set("findUser", Napi::Function::New(env, FindUser, "findUser"));
  out.Set("findGroup", Napi::Function::New(env, FindGroup, "findGroup"));
  out.Set("lastCapability", Napi::Number::New(env, ovl::last_capability()));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("interfaceWithAddress", Napi::Function::New(env, InterfaceWithAddress, "interfaceWithAddress"));
  exports.Set("readProcNet", Napi::Function::New(env, ReadProcNet, "readProcNet"));
  exports.Set("tunnelModes", Napi::Function::New(env, TunnelModes, "tunnelModes"));
  exports.Set("tunnelOverhead", Napi::Function::New(env, TunnelOverhead, "tunnelOverhead"));
  exports.Set("Forwarder", ForwarderWrap::Define(env));
  exports.Set("statsLayout", StatsLayout(env));
  exports.Set("privileges", Privileges(env));
  return exports;
}

}  // namespace

NODE_API_MODULE(overlayfwd, Init)
