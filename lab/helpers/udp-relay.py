# UDP sockets inside a namespace for a test that speaks a protocol from its own process (an IKE
# initiator, crafted datagrams whose replies it reads). One command per line on stdin, one event
# per line on stdout:
#
#   open ID ADDRESS PORT       bind a UDP socket (PORT 0: any)   ->  opened ID PORT  |  error ID TEXT
#   send ID ADDRESS PORT HEX   send one datagram from socket ID  ->  (nothing)       |  error ID TEXT
#   close ID
#   (a datagram arrives)                                          ->  recv ID ADDRESS PORT HEX
#
# Exits when stdin closes.
import os, select, socket, sys

socks, by_fd, pending = {}, {}, b''
poll = select.poll()
poll.register(0, select.POLLIN)

def out(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()

def command(words):
    op, sid = words[0], words[1]
    try:
        if op == 'open':
            s = socket.socket(socket.AF_INET6 if ':' in words[2] else socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((words[2], int(words[3])))
            s.setblocking(False)
            socks[sid] = s
            by_fd[s.fileno()] = sid
            poll.register(s.fileno(), select.POLLIN)
            out('opened %s %d' % (sid, s.getsockname()[1]))
        elif op == 'send':
            socks[sid].sendto(bytes.fromhex(words[4]), (words[2], int(words[3])))
        elif op == 'close':
            s = socks.pop(sid)
            poll.unregister(s.fileno())
            del by_fd[s.fileno()]
            s.close()
    except (OSError, KeyError, ValueError, IndexError) as e:
        out('error %s %s' % (sid, str(e).replace('\n', ' ')))

while True:
    for fd, _ in poll.poll():
        if fd == 0:
            chunk = os.read(0, 1 << 20)
            if not chunk:
                sys.exit(0)
            pending += chunk
            while b'\n' in pending:
                line, pending = pending.split(b'\n', 1)
                if line.strip():
                    command(line.decode().split())
        elif fd in by_fd:
            sid = by_fd[fd]
            while True:
                try:
                    data, addr = socks[sid].recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                out('recv %s %s %d %s' % (sid, addr[0], addr[1], data.hex()))
