import { isUtf8 } from 'node:buffer';
import type { KafkaMessage } from 'kafkajs';
import type { Registry } from '../codec/index.js';
import type { Metrics } from '../metrics/index.js';
import {
  BlueWebhooksError,
  type ErrorCode,
  errorCode,
  errorMessage,
  isShuttingDown,
  type Logger,
  parseRfc3339,
  type UntilDone,
} from '../shared/index.js';
import type { ApplyResult, PlacedChange, SubscriptionStore, TableChange } from './store.js';
import { decodeSubscription } from './subscription.js';
import type { SubscriptionTable } from './table.js';

/** Why a subscription record was not used (subscriptions_invalid_total{reason}). */
export type InvalidSubscriptionReason = 'MISSING_KEY' | ErrorCode;

export interface SubscriptionApplierOptions {
  registry: Registry;
  store: SubscriptionStore;
  table: SubscriptionTable;
  metrics: Metrics;
  log: Logger;
  untilDone: UntilDone;
}

/**
 * Applies records of the subscriptions topic to the table. Every record gets one end: applied
 * (or found older than what the table holds), or counted in subscriptions_invalid_total with its
 * reason and logged (never with its secret). A record that cannot be used makes its webhook inert
 * until a later record replaces it; one whose id cannot be known (no key, or a key that is not
 * UTF-8) never reaches Redis. Only a fault of the infrastructure waits (the retry); an error that
 * asking again cannot change (Redis refusing a command) ends that record, and the rest go on.
 */
export class SubscriptionApplier {
  /** The projects of each id as this replica last applied it: its cache may hold them. */
  private readonly projectsById = new Map<string, readonly string[]>();

  constructor(private readonly options: SubscriptionApplierOptions) {}

  /** Applies one partition's records, in order. */
  async apply(partition: number, messages: readonly KafkaMessage[]): Promise<void> {
    const changes: PlacedChange[] = [];
    for (const m of messages) {
      const change = await this.toChange(m);
      if (change) changes.push({ change, pos: { partition, offset: Number(m.offset), atMs: atMsOf(change, m) } });
    }
    const results = await this.applyAll(changes);
    const touched = new Set<string>();
    results.forEach((r, i) => {
      const { change } = changes[i]!;
      for (const p of r.projects) touched.add(p);
      for (const p of this.projectsById.get(change.id) ?? []) touched.add(p);
      if (change.kind === 'put') this.projectsById.set(change.id, change.sub.metadata.projectIds);
      else this.projectsById.delete(change.id);
    });
    this.options.table.invalidate(touched);
  }

  /** Forgets what was applied (a rebuild of the table starts). */
  reset(): void {
    this.projectsById.clear();
  }

  private async toChange(m: KafkaMessage): Promise<TableChange | null> {
    if (!m.key || m.key.length === 0) {
      this.invalid('MISSING_KEY', null, m.offset, 'a subscription record needs its webhook id as key');
      return null;
    }
    if (!isUtf8(m.key)) {
      // Read as a string it would become U+FFFD: two ids, one key. Its id cannot be known, so it stays out of Redis.
      this.invalid('MALFORMED_UNICODE', null, m.offset, 'the record key is not valid UTF-8', m.key.toString('base64'));
      return null;
    }
    const id = m.key.toString('utf8');
    if (m.value === null) return { kind: 'delete', id };
    try {
      const sub = await this.options.untilDone(
        () => decodeSubscription(m.value!, id, this.options.registry),
        'decoding a subscription',
      );
      return { kind: 'put', id, sub };
    } catch (err) {
      if (isShuttingDown(err)) throw err;
      const code = err instanceof BlueWebhooksError ? err.code : 'INVALID_SUBSCRIPTION';
      this.invalid(code, id, m.offset, errorMessage(err));
      return { kind: 'inert', id, reason: `${code}: ${errorMessage(err)}` };
    }
  }

  /** All changes at once; when Redis refuses, each alone, so that only the refused one ends. */
  private async applyAll(changes: PlacedChange[]): Promise<ApplyResult[]> {
    try {
      return await this.options.untilDone(() => this.options.store.applyAll(changes), 'applying subscription changes');
    } catch (err) {
      if (isShuttingDown(err) || changes.length === 0) throw err;
      const results: ApplyResult[] = [];
      for (const one of changes) results.push(await this.applyAlone(one));
      return results;
    }
  }

  private async applyAlone(one: PlacedChange): Promise<ApplyResult> {
    const { change, pos } = one;
    try {
      return (
        await this.options.untilDone(() => this.options.store.applyAll([one]), 'applying a subscription change')
      )[0]!;
    } catch (err) {
      if (isShuttingDown(err)) throw err;
      const code = errorCode(err) ?? 'INTERNAL_ERROR';
      this.invalid(code, change.id, String(pos.offset), errorMessage(err));
      if (change.kind !== 'put') return { applied: false, projects: [] };
      // The put is replaced, at its own position, by an inert marker: the webhook stops matching.
      const inert: TableChange = { kind: 'inert', id: change.id, reason: `${code}: Redis refused to apply it` };
      try {
        return (await this.options.store.applyAll([{ change: inert, pos }]))[0]!;
      } catch (inertErr) {
        this.options.log.error('subscription could not be made inert either', {
          webhookId: change.id,
          offset: pos.offset,
          error: errorMessage(inertErr),
        });
        return { applied: false, projects: change.sub.metadata.projectIds.slice() };
      }
    }
  }

  private invalid(
    reason: InvalidSubscriptionReason,
    webhookId: string | null,
    offset: string,
    message: string,
    keyBase64?: string,
  ): void {
    this.options.metrics.subscriptionsInvalid.inc({ reason });
    this.options.log.warn(
      'subscription record unusable; its webhook matches nothing until a valid record replaces it',
      {
        webhookId,
        offset,
        code: reason,
        reason: message,
        ...(keyBase64 === undefined ? {} : { keyBase64 }),
      },
    );
  }
}

/**
 * The time that orders versions of one key across partitions (RecordPosition.atMs): a put's
 * updatedAt, never later than the record's Kafka timestamp; otherwise the Kafka timestamp.
 */
function atMsOf(change: TableChange, m: KafkaMessage): number {
  const ts = Number(m.timestamp);
  const kafkaMs = Number.isSafeInteger(ts) && ts > 0 ? ts : 0;
  if (change.kind !== 'put') return kafkaMs;
  const updatedAtMs = parseRfc3339(change.sub.updatedAt) ?? 0;
  return kafkaMs > 0 ? Math.min(updatedAtMs, kafkaMs) : updatedAtMs;
}
