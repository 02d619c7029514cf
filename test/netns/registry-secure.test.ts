// Registry mode against a secured etcd: TLS with client certificates (a CA made for the test
// with openssl), and etcd's own users with password authentication. Hosts with the right
// credentials join and learn each other; wrong ones are refused with a clear error.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { EtcdServer, Lab, type EtcdTls } from '../../lab';
import type { Host } from '../../lab';
import { parseConfig } from '../../lib/config';
import type { Overlay } from '../../lib/overlay';
import { Registry } from '../../lib/registry/registry';
import { describeNetns, waitFor } from '../helpers/env';
import { loadOverlay } from '../helpers/overlay';

/** A CA, and certificates it signs for etcd (127.0.0.1) and for one client; another CA besides. */
function makePki(dir: string): { server: EtcdTls; client: { cert: string; key: string }; otherCa: string } {
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${ca}`, '-keyout', f(`${ca}.key`), '-out', f(`${ca}.pem`));
  }
  const issue = (name: string, ext: string) => {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`));
    fs.writeFileSync(f(`${name}.ext`), ext);
    openssl('x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', f(`${name}.ext`), '-out', f(`${name}.pem`));
  };
  issue('etcd', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  issue('host', 'extendedKeyUsage=clientAuth\n');
  return { server: { cert: f('etcd.pem'), key: f('etcd.key'), ca: f('ca.pem') }, client: { cert: f('host.pem'), key: f('host.key') }, otherCa: f('other-ca.pem') };
}

describeNetns('registry on a secured etcd', { tools: ['etcd', 'openssl'] }, () => {
  let lab: Lab;
  let hosts: Host[];
  let pki: ReturnType<typeof makePki>;
  let tlsEtcd: EtcdServer;
  let authEtcd: EtcdServer;
  const PASSWORD = crypto.randomBytes(12).toString('hex');

  function config(host: Host, etcd: Record<string, unknown>, prefix: string): Record<string, unknown> {
    return {
      name: 'ovl0',
      netns: host.ns,
      device: { type: 'tun', name: 'ovl0' },
      encap: { type: 'gre-udp' },
      underlay: { local: host.underlay },
      workers: 1,
      registry: { etcd: { ttlSeconds: 3, prefix, ...etcd }, network: '10.130.0.0/16', subnetLength: 24 },
      node: { name: host.label },
      control: { socket: path.join(lab.tmpdir(), `${host.label}-${prefix.slice(1)}.sock`) },
    };
  }

  async function join(host: Host, etcd: Record<string, unknown>, prefix: string): Promise<Overlay> {
    const OverlayCls = await loadOverlay();
    const ov = await OverlayCls.create(config(host, etcd, prefix));
    lab.onDestroy(() => ov.close());
    return ov;
  }

  beforeAll(async () => {
    lab = await Lab.create();
    process.env.OVERLAYFWD_STATE_DIR = path.join(lab.tmpdir(), 'state');
    pki = makePki(lab.tmpdir());
    tlsEtcd = await EtcdServer.start(lab, 'etcdtls', pki.server);
    authEtcd = await EtcdServer.start(lab, 'etcdauth');
    // etcd's own authentication: a root user with a password, then auth on.
    const admin = new Etcd3({ hosts: authEtcd.endpoint });
    try {
      await admin.user('root').create(PASSWORD);
      await admin.user('root').addRole('root');
      await (admin as unknown as { auth: { authEnable(request: object): Promise<unknown> } }).auth.authEnable({});
    } finally {
      admin.close();
    }
    hosts = await lab.switched(['a', 'b']);
  }, 60_000);
  afterAll(async () => {
    await lab?.destroy();
  });

  it('joins over TLS with a client certificate, and refuses a CA that did not sign etcd', async () => {
    const tls = { endpoints: [tlsEtcd.endpoint], tls: { ca: pki.server.ca, cert: pki.client.cert, key: pki.client.key } };
    const [A, B] = [await join(hosts[0]!, tls, '/tls'), await join(hosts[1]!, tls, '/tls')];
    await waitFor(() => A.peers.list().length === 1 && B.peers.list().length === 1, 'a and b to learn each other over TLS', 5000);
    const ping = await lab.ping(hosts[0]!, B.nodes().self.deviceAddress.split('/')[0]!, { count: 3, intervalSec: 0.1, timeoutSec: 2 });
    expect(ping.received).toBe(3);
    const wrongCa = parseConfig({ ...config(hosts[0]!, { endpoints: [tlsEtcd.endpoint], tls: { ca: pki.otherCa, cert: pki.client.cert, key: pki.client.key } }, '/tls'), netns: undefined, node: { name: 'x' } });
    await expect(Registry.open(wrongCa, { stateDir: path.join(lab.tmpdir(), 'x') })).rejects.toThrow(/^registry: etcd at https:\/\/127\.0\.0\.1:\d+: .*unable to verify the first certificate/);
    const noCert = parseConfig({ ...config(hosts[0]!, { endpoints: [tlsEtcd.endpoint], tls: { ca: pki.server.ca } }, '/tls'), netns: undefined, node: { name: 'y' } });
    await expect(Registry.open(noCert, { stateDir: path.join(lab.tmpdir(), 'y') })).rejects.toThrow(/bad certificate/);
    await Promise.all([A.close(), B.close()]);
  });

  it('joins with a user and password, and refuses a wrong password', async () => {
    const auth = { endpoints: [authEtcd.endpoint], username: 'root', password: PASSWORD };
    const [A, B] = [await join(hosts[0]!, auth, '/auth'), await join(hosts[1]!, auth, '/auth')];
    await waitFor(() => A.peers.list().length === 1 && B.peers.list().length === 1, 'a and b to learn each other with auth', 5000);
    const wrong = parseConfig({ ...config(hosts[0]!, { ...auth, password: 'not-it' }, '/auth'), netns: undefined, node: { name: 'z' } });
    await expect(Registry.open(wrong, { stateDir: path.join(lab.tmpdir(), 'z') })).rejects.toThrow(/^registry: etcd at http:\/\/127\.0\.0\.1:\d+: .*(authentication failed|invalid user ID or password)/);
    // Without credentials etcd refuses too.
    const anonymous = parseConfig({ ...config(hosts[0]!, { endpoints: [authEtcd.endpoint] }, '/auth'), netns: undefined, node: { name: 'w' } });
    await expect(Registry.open(anonymous, { stateDir: path.join(lab.tmpdir(), 'w') })).rejects.toThrow(/user name is empty/);
  });
});
