# A steady UDP stream that runs until it is told to stop, and counts every datagram: for tests
# that change something under traffic for as long as the change takes (a busy machine makes it
# take longer; a fixed-length stream would end first).
#
#   udp-stream.py recv ADDRESS PORT            bind, count; on SIGTERM read on until nothing has
#                                              come for 200 ms (what was still queued or on its
#                                              way is not lost), then print one JSON line:
#                                              {"received": N, "highest": SEQ, "duplicates": N}
#   udp-stream.py send ADDRESS PORT PPS SIZE   print {"started": PORT}, then send datagrams
#                                              numbered 0, 1, ... at PPS per second (paced by the
#                                              clock: a late wakeup catches up in a burst); on
#                                              SIGTERM print {"sent": N, "sendErrors": N}
#
# The receiver's buffer is 8 MiB (SO_RCVBUFFORCE as root), so a receiver starved of CPU for a
# while keeps what arrived instead of the kernel dropping it.
import json, signal, socket, struct, sys, time

stop = False

def on_term(signum, frame):
    global stop
    stop = True

signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)

def sock_for(address):
    return socket.socket(socket.AF_INET6 if ':' in address else socket.AF_INET, socket.SOCK_DGRAM)

def recv(address, port):
    s = sock_for(address)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((address, port))
    s.settimeout(0.05)
    print(json.dumps({'listening': port}), flush=True)
    seen, highest, duplicates = set(), -1, 0
    quiet_since = None  # once stopped: when the last datagram came
    while True:
        if stop:
            if quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= 0.2:
                break
        try:
            data = s.recv(65535)
        except (socket.timeout, InterruptedError):
            continue
        if stop:
            quiet_since = time.monotonic()
        if len(data) < 8:
            continue
        seq = struct.unpack('!Q', data[:8])[0]
        if seq in seen:
            duplicates += 1
            continue
        seen.add(seq)
        highest = max(highest, seq)
    print(json.dumps({'received': len(seen), 'highest': highest, 'duplicates': duplicates}), flush=True)

def send(address, port, pps, size):
    s = sock_for(address)
    payload = bytearray(max(size, 8))
    print(json.dumps({'started': port}), flush=True)
    start, sent, errors = time.monotonic(), 0, 0
    while not stop:
        due = int((time.monotonic() - start) * pps)
        while sent < due and not stop:
            struct.pack_into('!Q', payload, 0, sent)
            try:
                s.sendto(payload, (address, port))
            except OSError:
                # Not sent (a full queue, a route that went away): not counted as sent, so
                # never counted as lost either; reported.
                errors += 1
                break
            sent += 1
        time.sleep(0.001)
    print(json.dumps({'sent': sent, 'sendErrors': errors}), flush=True)

if sys.argv[1] == 'recv':
    recv(sys.argv[2], int(sys.argv[3]))
else:
    send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
