// Benchmark receiver, its own process. Listens on several loopback ports (several origins, as
// real endpoints are), records every delivery id, checks both signatures on a sample, and measures
// latency from the send time the producer put in the event (currentValue.benchSentAt).
// Driven over IPC: {cmd: 'reset' | 'stats' | 'delay', ...}.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyBlueSignature, verifyStandardSignature } from '../src/delivery/signing.js';

const PORTS = Number(process.env.BENCH_PORTS ?? 20);
const SECRET = process.env.BENCH_SECRET ?? 'bench-secret';
const SAMPLE_EVERY = 100;

let ids = new Set<string>();
let total = 0;
let latencies: number[] = [];
let first = 0;
let last = 0;
let sampled = 0;
let badSignatures = 0;
let delayMs = 0;

const now = () => performance.timeOrigin + performance.now();
const SENT_AT = /"benchSentAt":([0-9.]+)/;

function onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const at = now();
    const body = Buffer.concat(chunks);
    total++;
    if (first === 0) first = at;
    last = at;
    ids.add(`${req.headers['x-blue-delivery']}`);
    const m = SENT_AT.exec(body.toString('latin1', 0, Math.min(body.length, 4096)));
    if (m) latencies.push(at - Number(m[1]));
    if (total % SAMPLE_EVERY === 1) {
      sampled++;
      const h = req.headers as Record<string, string>;
      const ok =
        verifyBlueSignature(SECRET, body, h['x-blue-signature'] ?? '') &&
        verifyStandardSignature(
          SECRET,
          {
            id: h['webhook-id'] ?? '',
            timestamp: h['webhook-timestamp'] ?? '',
            signature: h['webhook-signature'] ?? '',
          },
          body,
        );
      if (!ok) badSignatures++;
    }
    const reply = () => res.writeHead(200, { 'content-length': '2' }).end('ok');
    if (delayMs > 0) setTimeout(reply, delayMs);
    else reply();
  });
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const ports: number[] = [];
  for (let i = 0; i < PORTS; i++) {
    const server = http.createServer(onRequest);
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    ports.push((server.address() as AddressInfo).port);
  }
  process.on('message', (msg: { cmd: string; delayMs?: number }) => {
    if (msg.cmd === 'reset') {
      ids = new Set();
      total = 0;
      latencies = [];
      first = 0;
      last = 0;
      sampled = 0;
      badSignatures = 0;
      process.send!({ cmd: 'reset' });
    } else if (msg.cmd === 'delay') {
      delayMs = msg.delayMs ?? 0;
      process.send!({ cmd: 'delay' });
    } else if (msg.cmd === 'stats') {
      const sorted = latencies.slice().sort((a, b) => a - b);
      process.send!({
        cmd: 'stats',
        total,
        unique: ids.size,
        firstAt: first,
        lastAt: last,
        sampled,
        badSignatures,
        latency: {
          n: sorted.length,
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          max: sorted[sorted.length - 1] ?? 0,
        },
      });
    }
  });
  process.send!({ cmd: 'ready', ports });
}

void main();
