import { createHash } from 'node:crypto';
import type { BlueEvent } from '../codec/index.js';

/**
 * The part of Blue's payload that every webhook of one event shares, serialised once. The body of
 * one delivery is `{"event":…,"webhook":` + the subscription's public JSON + this tail, so fan-out
 * to N webhooks costs N string concatenations, not N serialisations of a 2-3 KB record.
 */
export interface EventPayload {
  readonly head: string;
  readonly tail: string;
}

export function eventPayload(e: BlueEvent): EventPayload {
  return {
    head: `{"event":${JSON.stringify(e.event)},"webhook":`,
    tail:
      `,"currentValue":${JSON.stringify(e.currentValue)}` +
      `,"previousValue":${JSON.stringify(e.previousValue)}` +
      `,"company":${JSON.stringify(e.company)}` +
      `,"project":${JSON.stringify(e.project)}` +
      `,"user":${JSON.stringify(e.user)}}`,
  };
}

export function deliveryBody(p: EventPayload, webhookJson: string): string {
  return p.head + webhookJson + p.tail;
}

/**
 * The delivery id of an (event, webhook) pair: the same on every attempt and after any replay,
 * so receivers can de-duplicate on it (it is also the Standard Webhooks `webhook-id`).
 */
export function deliveryId(eventId: string, webhookId: string): string {
  return `msg_${createHash('sha256').update(eventId).update('\0').update(webhookId).digest('base64url').slice(0, 27)}`;
}
