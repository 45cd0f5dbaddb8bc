// One row of `npm run bench -- --tls`, its own process (its CPU and RSS are the row's): the
// service's send path (Deliverer and HttpClient: body, signatures, undici, the connector) posting
// to the grid's origins, or, for the floor, a bare TLS client. Trusts the run's authority through
// NODE_EXTRA_CA_CERTS, as a deployment would trust a private one. It uses only what every version
// of the HttpClient takes, so it can be copied into an older checkout to measure that one.
//
// Driven over IPC by one message:
//   {cmd: 'burst', origins, count, concurrency, again}   `count` deliveries, `concurrency` under
//                                                 way; with `again`, after an unmeasured first burst
//   {cmd: 'paced', origins, rate, cycles}         one unmeasured visit of every origin, then
//                                                 `cycles` more, `rate` deliveries a second
//   {cmd: 'floor', origin, count}                 bare TLS handshakes, full then resumed
import dns from 'node:dns';
import tls from 'node:tls';
import { loadConfig } from '../src/config/index.js';
import { HttpClient, TargetGuard } from '../src/delivery/index.js';
import { sampleSubscription } from '../src/demo/sample-data.js';
import { activate } from '../src/subscriptions/index.js';
import { sendPath } from './send-path.js';

interface Measured {
  deliveries: number;
  cpuUs: number;
  wallMs: number;
  peakRssMb: number;
  endRssMb: number;
}

const config = loadConfig({ DELIVERY_ALLOWLIST: '127.0.0.0/8' });

/**
 * With BENCH_HOSTS=1 the origins are host names, `o<k>-<port>.grid.test`, each its own: every
 * question is a real getaddrinfo (of `localhost`, through the threadpool and /etc/hosts as a name
 * would go) answered as 127.0.0.k, and counted. BENCH_DNS_TTL_MS stands for DNS_CACHE_TTL_MS.
 */
const byName = process.env.BENCH_HOSTS === '1';
let dnsQuestions = 0;
function gridResolve(
  hostname: string,
  options: dns.LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, list: dns.LookupAddress[]) => void,
): void {
  dnsQuestions++;
  const k = /^o(\d+)-\d+\.grid\.test$/.exec(hostname)?.[1];
  dns.lookup('localhost', { ...options, family: 4, all: true }, (err) => {
    if (err || k === undefined) callback(err ?? Object.assign(new Error(hostname), { code: 'ENOTFOUND' }), []);
    else callback(null, [{ address: `127.0.0.${k}`, family: 4 }]);
  });
}

function sender(origins: readonly string[]) {
  const guard = byName
    ? new TargetGuard(config.delivery.allowlist, {
        resolve: gridResolve,
        cacheTtlMs: Number(process.env.BENCH_DNS_TTL_MS ?? config.delivery.dnsCacheTtlMs),
      })
    : new TargetGuard(config.delivery.allowlist);
  const http = new HttpClient({
    ...config.delivery,
    // As the app does; BENCH_CONNECTIONS_PER_ORIGIN stands for an older app's choice.
    maxConnectionsPerOrigin: Number(
      process.env.BENCH_CONNECTIONS_PER_ORIGIN ??
        Math.min(config.delivery.maxConnectionsPerOrigin, config.isolation.maxConcurrency),
    ),
    guard,
    allowH2: process.env.BENCH_H2 === '1',
  } as ConstructorParameters<typeof HttpClient>[0]);
  const deliver = sendPath(http, config.delivery.userAgent);
  const named = (o: string) => {
    const u = new URL(o);
    return byName ? `${u.protocol}//o${u.hostname.split('.')[3]}-${u.port}.grid.test:${u.port}` : o;
  };
  const targets = origins.map((o) => activate(sampleSubscription({ secret: 'bench-secret', url: `${named(o)}/hook` })));
  let serial = 0;
  return {
    http,
    one: (at: number) => deliver(targets[at % targets.length]!, `evt_${serial++}`),
  };
}

/** Runs `work`, sampling RSS, and measures its CPU and wall time. */
async function measure(deliveries: number, work: () => Promise<void>): Promise<Measured> {
  dnsQuestions = 0;
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 100);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await work();
  const cpu = process.cpuUsage(cpu0);
  const wallMs = performance.now() - t0;
  clearInterval(sampler);
  const endRss = process.memoryUsage.rss();
  return {
    deliveries,
    cpuUs: cpu.user + cpu.system,
    wallMs,
    peakRssMb: Math.max(peak, endRss) / 2 ** 20,
    endRssMb: endRss / 2 ** 20,
  };
}

async function burst(origins: string[], count: number, concurrency: number, again: boolean) {
  const s = sender(origins);
  const run = async () => {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < count) await s.one(next++);
      }),
    );
  };
  if (again) {
    // A first burst, unmeasured; then the server closes every idle connection, and the measured
    // burst finds only what outlives connections (kept TLS sessions).
    await run();
    const deadline = Date.now() + 30_000;
    while ((stats(s.http).open ?? 0) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (!('open' in stats(s.http))) await new Promise((r) => setTimeout(r, 5000)); // an HttpClient without stats
    await warmed();
  }
  const result = await measure(count, run);
  return { ...result, ...stats(s.http) };
}

/** Tells the bench the unmeasured part is over, and waits for its go (the receiver's counters reset). */
async function warmed(): Promise<void> {
  process.send!({ cmd: 'warm' });
  await new Promise((resolve) => process.once('message', resolve));
}

async function paced(origins: string[], rate: number, cycles: number) {
  const s = sender(origins);
  const visit = async (count: number, offset: number) => {
    const t0 = performance.now();
    const under: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      under.push(s.one(offset + i));
    }
    await Promise.all(under);
  };
  await visit(origins.length, 0); // every origin once: its first handshake is not the regime
  await warmed();
  const count = origins.length * cycles;
  const result = await measure(count, () => visit(count, origins.length));
  return { ...result, ...stats(s.http) };
}

/** What the HttpClient says of its connections, where it can (not before the connector). */
function stats(http: HttpClient): Record<string, number> {
  const withStats = http as unknown as { connectionStats?: () => Record<string, number> };
  return { ...(withStats.connectionStats ? withStats.connectionStats() : {}), ...(byName ? { dnsQuestions } : {}) };
}

async function floor(origin: string, count: number) {
  const url = new URL(origin);
  const secureContext = tls.createSecureContext();
  const handshake = (session?: Buffer) =>
    new Promise<Buffer | undefined>((resolve, reject) => {
      let got: Buffer | undefined;
      const socket = tls.connect({ host: url.hostname, port: Number(url.port), secureContext, session });
      socket.on('session', (s: Buffer) => {
        got = s;
      });
      socket.once('secureConnect', () => {
        // TLS 1.3 tickets come just after the handshake: wait for one before closing.
        if (got || session) {
          socket.destroy();
          resolve(got ?? session);
        } else {
          socket.once('session', (s: Buffer) => {
            socket.destroy();
            resolve(s);
          });
        }
      });
      socket.once('error', reject);
    });
  const first = await handshake();
  const full = await measure(count, async () => {
    for (let i = 0; i < count; i++) await handshake();
  });
  const resumed = await measure(count, async () => {
    for (let i = 0; i < count; i++) await handshake(first);
  });
  return { full, resumed };
}

process.once('message', async (m: Record<string, unknown>) => {
  const origins = m.origins as string[];
  const out =
    m.cmd === 'burst'
      ? await burst(origins, m.count as number, m.concurrency as number, m.again === true)
      : m.cmd === 'paced'
        ? await paced(origins, m.rate as number, m.cycles as number)
        : await floor(m.origin as string, m.count as number);
  process.send!({ cmd: 'done', ...out }, () => process.exit(0));
});
process.send!({ cmd: 'ready' });
