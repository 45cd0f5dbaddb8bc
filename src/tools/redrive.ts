// Re-drives dead letters: deliveries (src/replay/redrive-deliveries.ts) or, with --events, events
// (src/replay/redrive-events.ts).
//
//   npm run redrive -- --webhook <id> [--from <ISO time>] [--to <ISO time>] [--dry-run]
//   npm run redrive -- --events [--reason <x-dlq-reason>] [--from <ISO time>] [--to <ISO time>] [--dry-run]
//   node dist/tools/redrive.js ...          (in the production image)
//
// --from/--to select by the time the record was dead-lettered. Deliveries go back on the first
// retry topic, due now; events go back on the events topic, as new events. Config comes from the
// same environment variables as the dispatcher. It prints a JSON report on stdout.
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/index.js';
import { silenceKafkajsTimerWarning } from '../kafka/index.js';
import { Metrics } from '../metrics/index.js';
import { redrive, redriveEvents } from '../replay/index.js';
import { createLogger, errorMessage } from '../shared/index.js';
import { parseReasonArg, parseTimeArg } from './args.js';
import { toolKafka } from './kafka.js';

async function main(): Promise<void> {
  silenceKafkajsTimerWarning();
  const { values } = parseArgs({
    options: {
      webhook: { type: 'string' },
      events: { type: 'boolean', default: false },
      reason: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
    },
  });
  if (values.events && values.webhook !== undefined)
    throw new Error("--events re-drives events, not one webhook's deliveries: leave out --webhook");
  if (!values.events && values.reason !== undefined) throw new Error('--reason applies to --events');
  if (!values.events && !values.webhook && !values.from && !values.to) {
    throw new Error('say what to re-drive: --webhook <id>, and/or --from/--to <ISO time>, or --events');
  }
  const fromMs = parseTimeArg('from', values.from);
  const toMs = parseTimeArg('to', values.to);
  const reason = parseReasonArg(values.reason);
  const config = loadConfig(process.env);
  const log = createLogger({ level: 'warn' });
  const { kafka, writer, close } = toolKafka(
    config,
    'blue-webhooks-redrive',
    log,
    new Metrics({ defaultMetrics: false }),
  );
  try {
    const dryRun = values['dry-run'];
    const report = values.events
      ? await redriveEvents(kafka, writer, config, { reason, fromMs, toMs, dryRun })
      : await redrive(kafka, writer, config, { webhookId: values.webhook, fromMs, toMs, dryRun });
    process.stdout.write(`${JSON.stringify({ ...report, dryRun })}\n`);
  } finally {
    await close();
  }
}

main().catch((err) => {
  process.stderr.write(`redrive: ${errorMessage(err)}\n`);
  process.exit(1);
});
