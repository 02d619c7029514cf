// What a tshark capture says about itself on stderr when it stops.

/**
 * Packets the capture lost (the kernel's ring or dumpcap fell behind), summed over interfaces:
 * tshark prints "N packets dropped from IFACE" when N > 0. A test that counts captured frames
 * against what was sent adds this back, so a busy machine cannot fail it, while a forwarder
 * that sent too few still does.
 */
export function captureDropped(stderr: string): number {
  let dropped = 0;
  for (const m of stderr.matchAll(/(\d+) packets? dropped/g)) dropped += Number(m[1]);
  return dropped;
}
