// overlayfwd: a userspace overlay-network forwarder for Node.js.
export { Overlay, type AnnounceEvent, type OverlayEvents, type OverlayPeers, type PeerTable } from './overlay';
export { parseConfig, loadConfigFile, ConfigError } from './config';
export { ControlServer, controlRequest } from './control';
export { diffCounters } from './stats';
export { DropCapture, PcapngWriter } from './pcapng';
export {
  createMetricsServer,
  METRIC_NAMES,
  OverlayMetrics,
  type ExtraCollector,
  type MetricsContext,
  type MetricsServer,
  type MetricsServerOptions,
  type MetricsSource,
  type OverlayMetricsOptions,
} from './metrics';
export * from './types';
