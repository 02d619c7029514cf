// Ethernet frames and VXLAN headers as bytes, for crafting what a test or a bench sends by hand
// (test/helpers/udp.ts, the floods bench).

export function macBytes(mac: string): Buffer {
  const b = Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
  if (b.length !== 6) throw new Error(`bad MAC ${mac}`);
  return b;
}

/** An Ethernet frame: dst, src, ethertype and a payload padded to the 60-byte minimum. */
export function ethernetFrame(dst: string, src: string, ethertype: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(14);
  macBytes(dst).copy(head, 0);
  macBytes(src).copy(head, 6);
  head.writeUInt16BE(ethertype, 12);
  const frame = Buffer.concat([head, payload]);
  return frame.length >= 60 ? frame : Buffer.concat([frame, Buffer.alloc(60 - frame.length)]);
}

export interface VxlanHeaderFields {
  vni: number;
  /** Byte 0 (default 0x08, the I flag). */
  flags?: number;
  /** Bytes 1-3 (default 0). */
  reserved1?: number;
  /** Byte 7 (default 0). */
  reserved2?: number;
}

/** The 8-byte VXLAN header (RFC 7348). */
export function vxlanHeader(f: VxlanHeaderFields): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt8(f.flags ?? 0x08, 0);
  h.writeUIntBE(f.reserved1 ?? 0, 1, 3);
  h.writeUIntBE(f.vni, 4, 3);
  h.writeUInt8(f.reserved2 ?? 0, 7);
  return h;
}
