import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import type { TestContext } from 'node:test';
import { defer } from './defer.js';
import { waitFor } from './wait.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

/** A redis-server of the test's own (nothing on disk) that it may kill and restart. */
export async function privateRedis(t: TestContext) {
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const answers = () =>
    new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  const r = {
    url: `redis://127.0.0.1:${port}`,
    async start() {
      proc = spawn(
        'redis-server',
        ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'],
        { stdio: 'ignore' },
      );
      await waitFor(answers, { what: 'the private redis-server' });
    },
    async kill() {
      const p = proc;
      // A process killed by a signal has a signalCode and no exitCode; waiting for its exit again would never end.
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((res) => p.once('exit', res));
      p.kill('SIGKILL');
      await exited;
    },
  };
  defer(t, () => r.kill());
  await r.start();
  return r;
}
