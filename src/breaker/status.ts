/** An endpoint health change on the status topic (schemas/webhook-status.avsc). */
export interface WebhookStatusEvent {
  webhookId: string;
  status: 'HEALTHY' | 'UNHEALTHY';
  reason: 'circuit_opened' | 'circuit_closed' | 'gone' | 'disable_recommended';
  consecutiveFailures: number;
  httpStatus: number | null;
  timestamp: number;
}

/** The status event a health change publishes: a closed circuit is HEALTHY, the rest UNHEALTHY. */
export function statusEvent(
  webhookId: string,
  reason: WebhookStatusEvent['reason'],
  consecutiveFailures: number,
  httpStatus: number | null,
): WebhookStatusEvent {
  const status = reason === 'circuit_closed' ? 'HEALTHY' : 'UNHEALTHY';
  return { webhookId, status, reason, consecutiveFailures, httpStatus, timestamp: Date.now() };
}
