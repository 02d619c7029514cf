{
  'targets': [
    {
      'target_name': 'overlayfwd',
      'includes': ['native/sources.gypi'],
      'sources': [
        '<@(overlayfwd_core_sources)',
        'native/addon/addon.cc',
      ],
      'include_dirs': ['native/core', "<!(node -p \"require('node-addon-api').include_dir\")"],
      'defines': ['NAPI_VERSION=8', 'NAPI_CPP_EXCEPTIONS', 'NODE_ADDON_API_DISABLE_DEPRECATED'],
      'cflags!': ['-fno-exceptions'],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17'],
      'cflags_cc': ['-std=gnu++17', '-fexceptions', '-frtti', '-O2', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-missing-field-initializers'],
      # No -lcrypto: the ESP ciphers (native/core/esp_aead.cc) use the OpenSSL that Node ships.
      # Node exports its symbols, the headers come from node-gyp's <nodedir>/include/node, and
      # the EVP_* references resolve against the node binary when the addon is loaded.
      'libraries': ['-lpthread'],
    },
  ],
}
