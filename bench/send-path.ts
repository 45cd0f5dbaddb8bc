// The service's send path as the benches drive it: one event of the bench's kind, signed and
// POSTed to a webhook through the Deliverer and a given HttpClient. Its body and signatures are
// real ones.
import { Deliverer, deliveryId, eventPayload, type HttpClient } from '../src/delivery/index.js';
import { sampleEvent } from '../src/demo/sample-data.js';
import type { ActiveSubscription } from '../src/subscriptions/index.js';

/** A function that delivers the bench's event to `target` once under `eventId`, and throws unless it was delivered. */
export function sendPath(http: HttpClient, userAgent: string) {
  const event = { ...sampleEvent(), occurredAtMs: 0 };
  const payload = eventPayload(event);
  const deliverer = new Deliverer(http, userAgent);
  return async (target: ActiveSubscription, eventId: string): Promise<void> => {
    const delivery = {
      deliveryId: deliveryId(eventId, target.sub.id),
      event,
      payload,
      target,
      eventTimestampMs: 0,
      entity: null,
    };
    const report = await deliverer.attempt(delivery, 1);
    if (!report.outcome.delivered) throw new Error(`a request was not delivered: ${report.outcome.message}`);
  };
}
