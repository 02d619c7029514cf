// A refused system call gets a hint naming the privilege it wanted.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { reportError } from '../../lib/cli/common';

function errno(code: string, syscall: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code, syscall });
}

describe('privilege hints', () => {
  afterEach(() => vi.restoreAllMocks());
  const printed = (err: unknown): string => {
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      lines.push(String(chunk));
      return true;
    });
    expect(reportError(err)).toBe(1);
    return lines.join('');
  };

  it.each([
    [errno('EACCES', 'bind', 'EACCES: bind failed (IKE 198.18.0.1:500)'), /CAP_NET_BIND_SERVICE/],
    [errno('EPERM', 'setns', 'EPERM: setns failed (netns ovt-a)'), /CAP_SYS_ADMIN/],
    [errno('EPERM', 'ioctl', 'EPERM: TUNSETIFF failed'), /CAP_NET_ADMIN and CAP_NET_RAW/],
    // What a non-root user gets from a root-only device node (the message the addon forms).
    [errno('EACCES', 'open', 'EACCES: open failed: Permission denied (/dev/net/tun)'), /needs \/dev\/net\/tun open to it .*0666/],
  ])('%s', (err, hint) => {
    const text = printed(err);
    expect(text).toMatch(/^overlayfwd: /);
    expect(text).toMatch(hint);
  });

  it('gives none for an error that is not a refused system call', () => {
    expect(printed(new Error('no running instance at /run/overlayfwd/x.sock'))).not.toMatch(/hint/);
  });
});
