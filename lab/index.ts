// A small network lab: network namespaces joined by veth pairs (or a bridge in a "switch"
// namespace), processes run inside them, and the kernel's own VXLAN device as a reference peer.
// Used by `overlayfwd demo`, the netns integration tests and the bench suite; not part of the
// library's API (lib/index.ts).
//
//   lab.ts           the Lab: hosts, links, commands and processes in them, destroy()
//   hosts.ts         hosts, links and the address plan (198.18.N.0/24 underlay, 198.19.0.0/16 overlay)
//   namespaces.ts    namespace names, creation, deletion with what runs inside, the stale sweep
//   cleanup.ts       cleanup on process exit and on signals
//   exec.ts          running a command to completion (in a namespace)
//   process.ts       long-running processes with captured output
//   kernel-vxlan.ts  the kernel VXLAN device, checksum offload off
//   probes.ts        ping, listening sockets, link names, MACs, /proc/net/snmp counters
//   system.ts        prerequisites, commands on PATH, helpers/*.py (the Python fallbacks)
//   etcd.ts          a real etcd (one member or a cluster) on loopback, for registry mode
//   strongswan.ts    strongSwan's charon in a host (kernel-libipsec), swanctl.conf builder, SA listing
//   pki.ts           a test PKI made with strongSwan's pki: CAs, host certificates, expired ones
//   transfer.ts      a sha256-verified TCP transfer between two hosts
//   sanitizer-env.ts what a child inherits in a sanitizer run: the ASan preload for node only
//   udp-stream.ts    a UDP stream that runs until stopped, every datagram counted
//   kernel-drops.ts  what the kernel itself dropped in the hosts (UDP receive errors, link drops)
//   flood.ts         floods of crafted UDP datagrams at full rate from a host (helpers/udp-flood.c)
//   frames.ts        Ethernet frames and VXLAN headers as bytes
export { Lab, type LabOptions } from './lab';
export { overlayAddress, OVERLAY_NET, UNDERLAY_NET, type Host, type HostLink, type LinkOptions } from './hosts';
export { execIn, LabCommandError, type ExecOptions, type ExecResult } from './exec';
export { LabProcess, type ExitStatus, type SpawnOptions } from './process';
export { VXLAN_PORT, type KernelVxlanOptions } from './kernel-vxlan';
export type { PingOptions, PingResult } from './probes';
export { commandExists, labUnavailableReason } from './system';
export { EtcdServer, type EtcdTls } from './etcd';
export { randomFile, verifiedTransfer, type TransferOptions, type TransferResult } from './transfer';
export { startUdpStream, type StreamResult, type UdpStream } from './udp-stream';
export { kernelDrops, kernelDropsBetween, type KernelDrops } from './kernel-drops';
export { addFlooder, buildFlooder, floodCpu, pinAwayFromFlood, startFlood, type Flood, type FloodOptions, type FloodResult } from './flood';
export { ethernetFrame, macBytes, vxlanHeader, type VxlanHeaderFields } from './frames';
export { snmpCounters } from './probes';
export {
  addTunnelAddress,
  Charon,
  CHARON_BIN,
  CHARON_PLUGINS,
  CHARON_ROUTING_TABLE,
  confValue,
  isEstablished,
  LIBIPSEC_TUN,
  parseSas,
  parseViciPretty,
  strongswanUnavailableReason,
  swanctlConf,
  type CharonOptions,
  type ChildSa,
  type CredentialFiles,
  type Duration,
  type IkeSa,
  type LogGroup,
  type SwanctlAuth,
  type SwanctlChild,
  type SwanctlConf,
  type SwanctlConnection,
  type SwanctlSecret,
  type ViciSection,
} from './strongswan';
export { Pki, type CaOptions, type CertAuthority, type Credential, type HostCredential, type HostOptions, type KeyType } from './pki';
