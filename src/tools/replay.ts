// Replays events to webhooks (see src/replay/replay.ts).
//
//   npm run replay -- --webhook <id> --from <ISO time> --to <ISO time> [--dry-run]
//   npm run replay -- --event <id> [--from <ISO time>] [--to <ISO time>] [--dry-run]
//   node dist/tools/replay.js ...          (in the production image)
//
// --webhook: every event of [from, to) that this webhook's subscription matches now.
// --event: that one event, to every webhook it matches now; --from/--to narrow the search (by
// default the whole topic is read). A dispatcher must be running to deliver what is queued.
// Config comes from the same environment variables as the dispatcher. It prints
// {"scanned", "decoded", "matched", "queued", "tooLarge", "dryRun", "seconds"} as JSON on stdout,
// and progress on stderr.
import { parseArgs } from 'node:util';
import { Registry } from '../codec/index.js';
import { loadConfig } from '../config/index.js';
import { silenceKafkajsTimerWarning } from '../kafka/index.js';
import { Metrics } from '../metrics/index.js';
import { replay } from '../replay/index.js';
import { RetryTiers } from '../retries/index.js';
import { createLogger, createRedisClient, errorMessage } from '../shared/index.js';
import { type ActiveSubscription, SubscriptionStore, SubscriptionTable } from '../subscriptions/index.js';
import { parseTimeArg } from './args.js';
import { toolKafka } from './kafka.js';

async function main(): Promise<void> {
  silenceKafkajsTimerWarning();
  const { values } = parseArgs({
    options: {
      webhook: { type: 'string' },
      event: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      'dry-run': { type: 'boolean', default: false },
    },
  });
  const fromMs = parseTimeArg('from', values.from);
  const toMs = parseTimeArg('to', values.to);
  if (values.webhook === undefined && values.event === undefined)
    throw new Error('say what to replay: --webhook <id> --from <ISO> --to <ISO>, or --event <id>');
  if (values.webhook !== undefined && (fromMs === undefined || toMs === undefined))
    throw new Error('--webhook needs --from and --to');
  if (fromMs !== undefined && toMs !== undefined && fromMs >= toMs) throw new Error('--from must be before --to');
  const config = loadConfig(process.env);
  const tiers = new RetryTiers(config.retries.topicPrefix, config.retries.scheduleMs);
  if (tiers.delaysMs.length === 0) throw new Error('RETRY_SCHEDULE is none: there is no retry topic to queue to');
  const log = createLogger({ level: 'warn' });
  const metrics = new Metrics({ defaultMetrics: false });
  const { kafka, writer, close } = toolKafka(config, 'blue-webhooks-replay', log, metrics);
  const redis = createRedisClient(config.redis, { maxRetriesPerRequest: 3 });
  const table = new SubscriptionTable(
    new SubscriptionStore(redis, config.redis.keyPrefix),
    config.subscriptions,
    metrics,
  );
  let webhook: Promise<ActiveSubscription | null> | null = null;
  const started = Date.now();
  try {
    const report = await replay({
      kafka,
      writer,
      registry: new Registry(config.schemaRegistryUrl),
      eventsTopic: config.topics.events,
      retryTopic: tiers.topicOf(tiers.delaysMs[0]!),
      fromMs: fromMs ?? 0,
      toMs: toMs ?? Date.now(),
      eventId: values.event,
      dryRun: values['dry-run'],
      candidates: async (event) => {
        if (values.webhook === undefined) {
          return (
            (await table.candidates([{ projectId: event.project.id, eventType: event.event }])).values().next().value ??
            []
          );
        }
        webhook ??= table.current(values.webhook).then((sub) => {
          if (sub === null) throw new Error(`no webhook ${values.webhook} in the subscription table`);
          return sub;
        });
        return [(await webhook)!];
      },
      progress: (r) => process.stderr.write(`replay: ${JSON.stringify(r)}\n`),
    });
    process.stdout.write(
      `${JSON.stringify({ ...report, dryRun: values['dry-run'], seconds: (Date.now() - started) / 1000 })}\n`,
    );
  } finally {
    await close();
    redis.disconnect();
  }
}

main().catch((err) => {
  process.stderr.write(`replay: ${errorMessage(err)}\n`);
  process.exit(1);
});
