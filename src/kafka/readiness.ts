import type { Admin } from 'kafkajs';
import { errorMessage, type Logger } from '../shared/index.js';
import { createKafka } from './client.js';

// Readiness learns of a lost broker within about interval + timeout.
const INTERVAL_MS = 2000;
const TIMEOUT_MS = 1500;

export interface KafkaReadinessOptions {
  brokers: readonly string[];
  clientId: string;
  log: Logger;
}

/**
 * Whether the cluster answers, for /readyz: one question at a time (describeCluster), with no
 * retries and a short deadline, so that a lost broker shows at once instead of after kafkajs's
 * own retries have run out.
 */
export class KafkaReadiness {
  private readonly admin: Admin;
  private checking = false;
  private timer: NodeJS.Timeout | null = null;
  /** Why the cluster is not ready, or null when it answered last time. */
  problem: string | null = 'not checked yet';

  constructor(options: KafkaReadinessOptions) {
    this.admin = createKafka({ ...options, retries: 0 }).admin();
  }

  /** Checks once now, then every few seconds until stopped. */
  async start(): Promise<void> {
    await this.check();
    this.timer = setInterval(() => void this.check(), INTERVAL_MS);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.admin.disconnect().catch(() => {});
  }

  private async check(): Promise<void> {
    if (this.checking) return;
    this.checking = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    });
    try {
      await Promise.race([this.admin.connect().then(() => this.admin.describeCluster()), timeout]);
      this.problem = null;
    } catch (err) {
      this.problem = errorMessage(err);
    } finally {
      clearTimeout(timer);
      this.checking = false;
    }
  }
}
