// (b) The HTTP limit: undici POSTs the same signed bodies to the same receiver ports at the same
// concurrency as the dispatcher, with the same keep-alive pools. Throughput mode: `count` requests
// as fast as they go. Paced mode: a fixed rate for a while, reporting round-trip latency.
import { Agent } from 'undici';
import { blueSignature, standardSignature } from '../src/delivery/signing.js';

interface Job {
  ports: number[];
  bodies: string[];
  secret: string;
  concurrency: number;
  connectionsPerOrigin: number;
  count: number;
  /** Requests per second; 0 = as fast as possible. */
  rate: number;
}

const now = () => performance.timeOrigin + performance.now();

process.on('message', async (job: Job) => {
  const agent = new Agent({ connections: job.connectionsPerOrigin, pipelining: 1, keepAliveTimeout: 30_000 });
  const latencies: number[] = [];
  let sent = 0;
  const one = async (i: number) => {
    const body = job.bodies[i % job.bodies.length]!;
    const port = job.ports[i % job.ports.length]!;
    const id = `msg_bench_${i}`;
    const ts = Math.floor(Date.now() / 1000);
    const t0 = now();
    const res = await agent.request({
      origin: `http://127.0.0.1:${port}`,
      path: '/hook',
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-blue-delivery': id,
        'x-blue-signature': blueSignature(job.secret, body),
        'webhook-id': id,
        'webhook-timestamp': String(ts),
        'webhook-signature': standardSignature(job.secret, id, ts, body),
      },
      body,
    });
    await res.body.dump();
    latencies.push(now() - t0);
  };
  const start = now();
  const cpuBefore = process.cpuUsage();
  if (job.rate === 0) {
    const worker = async () => {
      while (sent < job.count) await one(sent++);
    };
    await Promise.all(Array.from({ length: job.concurrency }, worker));
  } else {
    const inflight = new Set<Promise<void>>();
    for (let i = 0; i < job.count; i++) {
      const due = start + (i * 1000) / job.rate;
      while (now() < due) await new Promise((r) => setTimeout(r, Math.max(0, due - now())));
      const p = one(i).finally(() => inflight.delete(p));
      inflight.add(p);
    }
    await Promise.all(inflight);
  }
  const seconds = (now() - start) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  // The client's own CPU per request: the floor under the dispatcher's CPU per delivery.
  const cpuUsPerRequest = (cpu.user + cpu.system) / job.count;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
  // Sent before exiting: an IPC message still being written is lost at exit.
  await new Promise<void>((sent) =>
    process.send!(
      { requestsPerSec: job.count / seconds, cpuUsPerRequest, p50: pct(50), p99: pct(99), max: latencies.at(-1) ?? 0 },
      () => sent(),
    ),
  );
  await agent.close();
  process.exit(0);
});
process.send!({ cmd: 'ready' });
