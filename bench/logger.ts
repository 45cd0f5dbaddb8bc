// `npm run bench:logger > /dev/null`: what a log line costs. Writes N lines (default 200,000;
// --lines N) of the shape the dispatcher logs most (a warning with a handful of fields, one of them
// nested and one secret) through the service's logger to stdout, and prints to stderr the
// microseconds of CPU and of wall time per line. Run it with stdout sent to
// /dev/null or a file, so the terminal's speed is not what is measured.
import { parseArgs } from 'node:util';
import { createLogger } from '../src/shared/logger.js';

const { values: flags } = parseArgs({ options: { lines: { type: 'string', default: '200000' } } });
const lines = Number(flags.lines);
const log = createLogger({ level: 'info', bindings: { service: 'blue-webhooks', instance: 'bench' } }).child({
  partition: 3,
});

const fields = (i: number) => ({
  eventId: `evt-${i}`,
  webhookId: 'wh-1',
  url: 'https://user:pass@hooks.example.com/in?token=abc',
  error: new Error(`connect ECONNREFUSED ${i}`),
  attempt: { number: 2, reason: 'http_5xx', headers: { authorization: 'Bearer x', 'x-request-id': `r-${i}` } },
  secret: 'whsec_never',
});

// Warm-up, so the JIT is done before the measure.
for (let i = 0; i < 10_000; i++) log.warn('delivery failed, retry scheduled', fields(i));
await new Promise((resolve) => setImmediate(resolve));

const cpuBefore = process.cpuUsage();
const started = process.hrtime.bigint();
for (let i = 0; i < lines; i++) {
  log.warn('delivery failed, retry scheduled', fields(i));
  // Let asynchronous writes proceed, as a dispatcher's event loop would.
  if (i % 1000 === 999) await new Promise((resolve) => setImmediate(resolve));
}
const wallUs = Number(process.hrtime.bigint() - started) / 1000;
const cpu = process.cpuUsage(cpuBefore);
process.stderr.write(
  `${JSON.stringify({
    lines,
    cpuUsPerLine: Number(((cpu.user + cpu.system) / lines).toFixed(2)),
    wallUsPerLine: Number((wallUs / lines).toFixed(2)),
  })}\n`,
);
