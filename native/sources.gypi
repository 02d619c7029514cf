# The one list of core sources. binding.gyp includes it; native/CMakeLists.txt parses it,
# so the addon build and the test/fuzz/sanitizer builds cannot drift apart.
{
  'variables': {
    'overlayfwd_core_sources': [
      'native/core/checksum.cc',
      'native/core/ethernet.cc',
      'native/core/flow_hash.cc',
      'native/core/forwarder.cc',
      'native/core/geneve_codec.cc',
      'native/core/gre_codec.cc',
      'native/core/learned_fdb.cc',
      'native/core/link_config.cc',
      'native/core/netns.cc',
      'native/core/offload_coalesce.cc',
      'native/core/offload_segment.cc',
      'native/core/peer_table.cc',
      'native/core/route_table.cc',
      'native/core/socket_address.cc',
      'native/core/stats_layout.cc',
      'native/core/sys_error.cc',
      'native/core/tap_device.cc',
      'native/core/udp_socket.cc',
      'native/core/uring_writer.cc',
      'native/core/vxlan_codec.cc',
      'native/core/worker.cc',
    ],
  },
}
