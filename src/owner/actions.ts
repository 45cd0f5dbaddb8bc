// What an owner asks the service to send: a test event to a webhook, or one delivery again. Both go
// the normal way, as a retry record due now on the first retry topic: the retry consumer reads the
// subscription as it is, and the guard, signatures, breaker, retries, outcome and log all apply.
import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import { type BlueEvent, decodeEvent, type EventSource, type Registry } from '../codec/index.js';
import { deliveryId } from '../delivery/index.js';
import { kafkaError, readRecordAt } from '../kafka/index.js';
import type { RetryRecord } from '../retries/index.js';
import { BlueWebhooksError } from '../shared/index.js';
import type { SubscriptionTable } from '../subscriptions/index.js';
import type { DeliveryLog } from './delivery-log.js';

/** The event type of a test delivery (docs/contract.md#owner-api-and-delivery-log). */
export const TEST_EVENT_TYPE = 'WEBHOOK_TEST';

/** Why an action could not be taken; each is an answer of the API. */
export type ActionRefusal = 'unknown_webhook' | 'disabled' | 'unknown_delivery' | 'gone';

export type ActionResult = { deliveryId: string } | { refused: ActionRefusal; message: string };

export interface OwnerActionsOptions {
  table: SubscriptionTable;
  log: DeliveryLog;
  kafka: Kafka;
  registry: Registry;
  /** Writes a retry record due now to the first retry topic, durably. */
  schedule: (record: RetryRecord) => Promise<void>;
}

/** How long reading an event back from Kafka may take before the answer is 503. */
const READ_TIMEOUT_MS = 15_000;

export class OwnerActions {
  constructor(private readonly options: OwnerActionsOptions) {}

  /** A signed WEBHOOK_TEST event to one webhook, now. */
  async sendTest(webhookId: string): Promise<ActionResult> {
    const target = await this.options.table.current(webhookId);
    if (target === null) return { refused: 'unknown_webhook', message: 'no such webhook' };
    if (!target.sub.enabled) return { refused: 'disabled', message: 'the webhook is disabled' };
    const now = new Date();
    const event: Omit<BlueEvent, 'occurredAtMs'> = {
      id: `evt_test_${randomBytes(12).toString('hex')}`,
      event: TEST_EVENT_TYPE,
      occurredAt: now.toISOString(),
      company: { id: target.sub.companyId },
      project: { id: target.sub.metadata.projectIds[0] ?? target.sub.companyId },
      user: null,
      currentValue: { message: 'A test event from Blue: your endpoint is reachable.', webhookId },
      previousValue: null,
    };
    return this.schedule(deliveryId(event.id, webhookId), webhookId, 1, event, now.getTime());
  }

  /** One delivery again, now, with its delivery id (the `webhook-id` header), its event read back from Kafka. */
  async resend(id: string): Promise<ActionResult> {
    const origin = await this.options.log.origin(id);
    if (origin === null) return { refused: 'unknown_delivery', message: 'no attempt of this delivery is in the log' };
    if (origin.source === null)
      return { refused: 'gone', message: 'where its event was read is not known (a delivery older than that)' };
    let message: Awaited<ReturnType<typeof readRecordAt>>;
    try {
      message = await readRecordAt(this.options.kafka, origin.source, READ_TIMEOUT_MS);
    } catch (err) {
      throw err instanceof BlueWebhooksError ? err : kafkaError('reading an event back', err);
    }
    if (message === null) return { refused: 'gone', message: 'the event is no longer in its topic' };
    let event: BlueEvent;
    try {
      event = await decodeEvent(message.value, this.options.registry);
    } catch (err) {
      if (err instanceof BlueWebhooksError && err.retriable) throw err;
      return { refused: 'gone', message: 'the record at that place is no longer an event that can be sent' };
    }
    const { occurredAtMs: _, ...stored } = event;
    return this.schedule(
      id,
      origin.webhookId,
      origin.lastAttempt + 1,
      stored,
      Number(message.timestamp),
      origin.source,
    );
  }

  private async schedule(
    id: string,
    webhookId: string,
    attempt: number,
    event: Omit<BlueEvent, 'occurredAtMs'>,
    eventTimestampMs: number,
    source?: EventSource,
  ): Promise<ActionResult> {
    const now = Date.now();
    await this.options.schedule({
      v: 1,
      deliveryId: id,
      webhookId,
      attempt,
      retry: 0,
      dueAt: now,
      firstAttemptAt: now,
      eventTimestampMs,
      event,
      ...(source ? { source } : {}),
    });
    return { deliveryId: id };
  }
}
