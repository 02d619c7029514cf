// The config layer as the rest of lib/ (and its tests) import it: `from './config'`.
// resolve.ts runs a config through schema.ts (stage 1, each field on its own) and rules.ts
// (stage 2, across fields); modes.ts is the one table of what each encapsulation is.
export { ConfigError, isConfigError, type ConfigIssue } from './errors';
export { formatPath } from './issues';
export { formatEndpoint, networkOf, parseCidr, parseEndpointString, parseIp, parseMac } from './addresses';
export { BUSY_POLL_DEFAULT_US, defaultSocketPath, runDir } from './defaults';
export { DEFAULT_PORTS, DEVICE_TYPES, ENCAP_TYPES, overheadFor, usesUdp } from './modes';
export {
  ESP_CIPHERS,
  ESP_CIPHER_KEY_BYTES,
  ESP_MAX_INBOUND_SAS,
  ESP_REKEY_GRACE_DEFAULT_SECONDS,
  ESP_SALT_BYTES,
  espKeyBytes,
  formatSpi,
  parseSaKey,
  parseSpi,
} from './sa';
export { encapInput } from './encap';
export { parseConfig, parsePeer, publicPeer } from './resolve';
export { parseRekey, type SaChange } from './rekey';
export { loadConfigFile } from './load';
