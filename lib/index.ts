// overlayfwd: a userspace overlay-network forwarder for Node.js.
export { Overlay, type OverlayPeers, type PeerTable } from './overlay';
export { parseConfig, loadConfigFile, ConfigError } from './config';
export { ControlServer, controlRequest } from './control';
export { diffCounters } from './stats';
export * from './types';
