import type { Admin } from 'kafkajs';
import type { Metrics } from '../metrics/index.js';
import { errorMessage, type Logger } from '../shared/index.js';

/** How often the group's committed offsets and the partition ends are read. */
const LAG_INTERVAL_MS = 5000;

export interface LagReporterOptions {
  admin: Admin;
  groupId: string;
  topics: string[];
  /** Whether this replica owns the partition now (only those are reported). */
  owns: (topic: string, partition: number) => boolean;
  metrics: Metrics;
  log: Logger;
}

/** consumer_lag: partition end minus the group's committed offset, for each partition owned here. */
export class LagReporter {
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: LagReporterOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.report(), LAG_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private async report(): Promise<void> {
    const { admin, groupId, topics, metrics } = this.options;
    try {
      for (const { topic, partitions } of await admin.fetchOffsets({ groupId, topics })) {
        const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, p]));
        for (const { partition, offset } of partitions) {
          const end = ends.get(partition);
          if (!end || !this.options.owns(topic, partition)) continue;
          // No commit yet: the group starts from the beginning of what the topic keeps.
          const from = Number(offset) >= 0 ? Number(offset) : Number(end.low);
          metrics.consumerLag.set({ topic, partition: String(partition) }, Math.max(0, Number(end.high) - from));
        }
      }
    } catch (err) {
      this.options.log.debug('consumer lag not read this time', { error: errorMessage(err) });
    }
  }
}
