// Keeps the delivery log from the results topic, as a consumer group of its own: the delivery path
// never waits for it, and one replica's share of the topic is logged once across the group.
import type { EachBatchPayload, Kafka } from 'kafkajs';
import type { Registry } from '../codec/index.js';
import { SupervisedConsumer } from '../kafka/index.js';
import type { Metrics } from '../metrics/index.js';
import type { WebhookResult } from '../results/index.js';
import { errorCode, errorMessage, isShuttingDown, type Logger, type UntilDone } from '../shared/index.js';
import { type DeliveryLog, unloggable } from './delivery-log.js';

export interface LogConsumerOptions {
  kafka: Kafka;
  /** RESULTS_TOPIC. */
  topic: string;
  /** `<CONSUMER_GROUP>.delivery-log`. */
  groupId: string;
  registry: Registry;
  log: DeliveryLog;
  metrics: Metrics;
  logger: Logger;
  untilDone: UntilDone;
}

export class LogConsumer {
  private consumer: SupervisedConsumer | null = null;

  constructor(private readonly options: LogConsumerOptions) {}

  async start(): Promise<void> {
    const { kafka, topic, groupId, metrics, logger } = this.options;
    this.consumer = new SupervisedConsumer({
      kafka,
      name: 'delivery-log',
      metrics,
      log: logger,
      // Fewer, larger batches under load (one Redis call a bucket a batch, so cheaper per result);
      // a quarter second at most, so an attempt shows in the log within a second.
      config: { groupId, minBytes: 1024 * 1024, maxWaitTimeInMs: 250, allowAutoTopicCreation: false },
      setup: async (consumer) => {
        // From the beginning on a first start: results older than the retention are passed over.
        await consumer.subscribe({ topic, fromBeginning: true });
        await consumer.run({ eachBatch: (p) => this.onBatch(p) });
      },
    });
    await this.consumer.start();
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
  }

  /**
   * A batch is logged whole, then its offsets are resolved. A record that cannot be read, or that
   * Redis refuses, is counted with its reason and passed; waiting on an unreachable Redis or
   * registry holds the partition (the lag gauge shows it).
   */
  private async onBatch({ batch, heartbeat }: EachBatchPayload): Promise<void> {
    const { registry, metrics, untilDone } = this.options;
    const results: WebhookResult[] = [];
    for (const m of batch.messages) {
      if (m.value === null) continue;
      try {
        const r = (await untilDone(() => registry.decode(m.value!), 'decoding a result')) as WebhookResult;
        const why = unloggable(r);
        if (why !== null) this.skip('INVALID_RESULT', why, { partition: batch.partition, offset: m.offset });
        else if (this.options.log.expired(r)) metrics.deliveryLogSkipped.inc({ reason: 'EXPIRED' });
        else results.push(r);
      } catch (err) {
        if (isShuttingDown(err)) throw err;
        this.skip(errorCode(err) ?? 'DECODE_FAILED', errorMessage(err), {
          partition: batch.partition,
          offset: m.offset,
        });
      }
    }
    try {
      const refused = await untilDone(() => this.options.log.append(results), 'logging attempts');
      for (const { result, message } of refused)
        this.skip('REDIS_REJECTED', message, { deliveryId: result.deliveryId });
      metrics.deliveryLogAppended.inc(results.length - refused.length);
    } catch (err) {
      if (isShuttingDown(err)) throw err;
      // What waiting cannot fix and that is not one attempt's (the script itself refused): the batch.
      for (const r of results)
        this.skip(errorCode(err) ?? 'REDIS_REJECTED', errorMessage(err), { deliveryId: r.deliveryId });
    }
    const last = batch.messages[batch.messages.length - 1];
    const behind = Number(batch.offsetLag());
    metrics.deliveryLogLag.set(
      { partition: String(batch.partition) },
      behind > 0 && last ? Math.max(0, (Date.now() - Number(last.timestamp)) / 1000) : 0,
    );
    await heartbeat();
  }

  /** Counts and logs a result that will not be in the log; `where` names the record or the delivery. */
  private skip(reason: string, detail: string, where: Record<string, string | number>): void {
    this.options.metrics.deliveryLogSkipped.inc({ reason });
    this.options.logger.warn('a result was not logged', { reason, detail, ...where });
  }
}
