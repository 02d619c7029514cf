# The bench's own addon: the codec loops that bench/micro.ts and bench/esp-micro.ts time. It is
# not part of the shipped addon; `npm run bench:addon` builds it (bench/codec-addon.ts does so on
# demand). It compiles the few core sources the codecs need.
{
  'targets': [
    {
      'target_name': 'codec_bench',
      'sources': [
        'codec_bench.cc',
        '../../native/core/base/flow_hash.cc',
        '../../native/core/system/sys_error.cc',
        '../../native/core/tunnel/esp/esp_aead.cc',
        '../../native/core/tunnel/esp/esp_codec.cc',
        '../../native/core/tunnel/esp/replay_window.cc',
        '../../native/core/tunnel/vxlan_codec.cc',
        '../../native/core/wire/ethernet.cc',
      ],
      'include_dirs': ['../../native/core', "<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17'],
      'cflags_cc': ['-std=gnu++17', '-fexceptions', '-frtti', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter'],
    },
  ],
}
