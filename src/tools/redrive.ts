// Re-drives dead-lettered deliveries (see src/retries/redrive.ts).
//
//   npm run redrive -- --webhook <id> [--from <ISO time>] [--to <ISO time>] [--dry-run]
//   node dist/tools/redrive.js ...          (in the production image)
//
// --from/--to select by the time the delivery was dead-lettered. Config comes from the same
// environment variables as the dispatcher (KAFKA_BROKERS, DELIVERY_DLQ_TOPIC, RETRY_TOPIC_PREFIX,
// RETRY_SCHEDULE). It prints {"scanned", "matched", "redriven", "unreadable"} as JSON.
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import { createKafka } from '../kafka/client.js';
import { redrive } from '../retries/redrive.js';
import { errorMessage } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';

function parseTime(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`--${name}: expected an ISO-8601 time, got "${v}"`);
  return t;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      webhook: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
    },
  });
  if (!values.webhook && !values.from && !values.to) {
    throw new Error('say what to re-drive: --webhook <id>, and/or --from/--to <ISO time>');
  }
  const config = loadConfig(process.env);
  const log = createLogger({ level: 'warn' });
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: 'blue-webhooks-redrive', log });
  const report = await redrive(kafka, config, {
    webhookId: values.webhook,
    fromMs: parseTime('from', values.from),
    toMs: parseTime('to', values.to),
    dryRun: values['dry-run'],
  });
  process.stdout.write(`${JSON.stringify({ ...report, dryRun: values['dry-run'] })}\n`);
}

main().catch((err) => {
  process.stderr.write(`redrive: ${errorMessage(err)}\n`);
  process.exit(1);
});
