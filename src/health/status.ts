/** An endpoint health change on the status topic (schemas/webhook-status.avsc). */
export interface WebhookStatusEvent {
  webhookId: string;
  status: 'HEALTHY' | 'UNHEALTHY';
  reason: 'circuit_opened' | 'circuit_closed' | 'gone' | 'disable_recommended';
  consecutiveFailures: number;
  httpStatus: number | null;
  timestamp: number;
}
