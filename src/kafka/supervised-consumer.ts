import type { Consumer, ConsumerConfig, Kafka } from 'kafkajs';
import type { Metrics } from '../metrics/index.js';
import { type BackoffOptions, backoffMs, errorMessage, type Logger } from '../shared/index.js';
import { isTransientKafkaError } from './client.js';

export interface SupervisedConsumerOptions {
  kafka: Kafka;
  /** Which consumer this is, in logs and in the `consumer` label of consumer_crashes_total. */
  name: 'events' | 'retries' | 'subscriptions' | 'delivery-log';
  /** kafkajs consumer config; `retry` defaults to 10 retries from 200 ms to 5 s, then a kafkajs restart. */
  config: ConsumerConfig;
  /** Prepares a new, connected consumer: listeners, subscriptions, then `run`. */
  setup: (consumer: Consumer) => Promise<void>;
  metrics: Metrics;
  log: Logger;
  /** Delay before starting a new consumer after kafkajs gives up. Default 1 s doubling to 30 s. */
  backoff?: BackoffOptions;
}

const RETRY = { retries: 10, initialRetryTime: 200, maxRetryTime: 5000, restartOnFailure: async () => true };

/** A crash this long after the previous one starts the backoff from the beginning again. */
const CALM_MS = 5 * 60_000;

/**
 * A kafkajs consumer that is replaced when kafkajs gives up on it. kafkajs restarts a crashed
 * consumer by itself only when the error is retriable; after any other crash it leaves it
 * disconnected for good, and the replica would stay up, consuming nothing. Here a new consumer
 * (same group, so it resumes from the committed offsets) is started after a backoff.
 */
export class SupervisedConsumer {
  private consumer: Consumer | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private crashes = 0;
  private lastCrashAt = 0;

  constructor(private readonly options: SupervisedConsumerOptions) {}

  /** The consumer now running (null before start). */
  get current(): Consumer | null {
    return this.consumer;
  }

  async start(): Promise<void> {
    const consumer = this.options.kafka.consumer({
      ...this.options.config,
      retry: { ...RETRY, ...this.options.config.retry },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, ({ payload }) => this.onCrash(consumer, payload.error, payload.restart));
    await consumer.connect();
    await this.options.setup(consumer);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.consumer?.disconnect();
  }

  private onCrash(consumer: Consumer, error: Error, restart: boolean): void {
    this.options.metrics.consumerCrashes.inc({
      consumer: this.options.name,
      restarted_by: restart ? 'kafkajs' : 'service',
    });
    if (restart) {
      // A coordinator still loading is how a healthy cluster's first seconds look: a warning.
      const level = isTransientKafkaError(errorMessage(error)) ? 'warn' : 'error';
      this.options.log[level]('consumer crashed; kafkajs restarts it', {
        consumer: this.options.name,
        error: errorMessage(error),
      });
      return;
    }
    if (consumer !== this.consumer || this.stopped) return;
    this.replaceLater(error);
  }

  private replaceLater(error: unknown): void {
    const now = Date.now();
    if (now - this.lastCrashAt > CALM_MS) this.crashes = 0;
    this.lastCrashAt = now;
    const delayMs = backoffMs(++this.crashes, { initialMs: 1000, maxMs: 30_000, ...this.options.backoff });
    this.options.log.error('consumer crashed and kafkajs gave up on it; starting a new one', {
      consumer: this.options.name,
      error: errorMessage(error),
      delayMs,
    });
    this.timer = setTimeout(() => void this.replace(), delayMs);
  }

  private async replace(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    await this.consumer?.disconnect().catch(() => {});
    try {
      await this.start();
    } catch (err) {
      if (!this.stopped) this.replaceLater(err);
    }
  }
}
