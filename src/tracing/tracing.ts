import {
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type TextMapGetter,
  type TextMapPropagator,
  type Tracer,
  trace,
} from '@opentelemetry/api';

export interface TracingOptions {
  /** OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL (OTLP/HTTP); empty: no tracing at all. */
  endpoint: string;
  serviceName: string;
  instanceId: string;
}

/** Kafka headers as kafkajs gives them. */
type KafkaHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined>;

const kafkaGetter: TextMapGetter<KafkaHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const v = carrier[key];
    if (v === undefined) return undefined;
    return Array.isArray(v) ? v.map(String) : String(v);
  },
};

// version 00: "00-<trace id, 32 hex>-<parent id, 16 hex>-<flags, 2 hex>", lowercase.
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const ZERO_IDS = /^00-(?:0{32}-|[0-9a-f]{32}-0{16}-)/;

/**
 * Traces, when OTEL_EXPORTER_OTLP_ENDPOINT is set: a W3C `traceparent` in an event's Kafka headers
 * is continued through consume → match → attempt → outcome, and sent on to the webhook in the
 * request's `traceparent` header; spans go to the collector over OTLP/HTTP in batches.
 *
 * Without the variable there is no provider, no exporter and no span: `enabled` is false and the
 * hot path checks it before doing anything (the bench shows no measurable cost).
 */
export class Tracing {
  readonly enabled: boolean;
  private tracer: Tracer | null = null;
  private propagator: TextMapPropagator | null = null;
  private shutdownProvider: (() => Promise<void>) | null = null;

  constructor(private readonly options: TracingOptions) {
    this.enabled = options.endpoint !== '';
  }

  /**
   * Loads the SDK and the exporter, only when tracing is on: a service without the variable does
   * not even load them (they weigh on startup and on the heap).
   */
  async init(): Promise<void> {
    if (!this.enabled || this.tracer) return;
    const [
      { W3CTraceContextPropagator },
      { OTLPTraceExporter },
      { resourceFromAttributes },
      { BatchSpanProcessor, TracerProvider },
    ] = await Promise.all([
      import('@opentelemetry/core'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/sdk-trace'),
    ]);
    const options = this.options;
    const provider = new TracerProvider({
      resource: resourceFromAttributes({
        'service.name': options.serviceName,
        'service.instance.id': options.instanceId,
      }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter: new OTLPTraceExporter({ url: `${options.endpoint.replace(/\/+$/, '')}/v1/traces` }),
          scheduledDelayMillis: 1000,
        }),
      ],
    });
    this.propagator = new W3CTraceContextPropagator();
    this.tracer = provider.getTracer('blue-webhooks');
    this.shutdownProvider = () => provider.shutdown();
  }

  /** The context a record's `traceparent` header carries (the root context without one). */
  fromKafkaHeaders(headers: KafkaHeaders | undefined): Context {
    return headers && this.propagator ? this.propagator.extract(ROOT_CONTEXT, headers, kafkaGetter) : ROOT_CONTEXT;
  }

  /**
   * With tracing off, the record's own `traceparent`, to pass on unchanged: W3C Trace Context asks
   * a participant that does not trace to forward the header, so the receiver's spans still join
   * the producer's trace. Only a well-formed value (version 00, ids not all zeros) is passed on.
   * Undefined with tracing on (the attempt's span gives its own) or without a valid header.
   */
  passThrough(headers: KafkaHeaders | undefined): string | undefined {
    if (this.enabled || !headers) return undefined;
    const value = kafkaGetter.get(headers, 'traceparent');
    const one = Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value;
    return one !== undefined && TRACEPARENT.test(one) && !ZERO_IDS.test(one) ? one : undefined;
  }

  /** Starts a span under `parent`; null when tracing is off. */
  start(name: string, parent: Context, kind: SpanKind, attributes: Record<string, string | number> = {}): Span | null {
    return this.tracer ? this.tracer.startSpan(name, { kind, attributes }, parent) : null;
  }

  /** The context whose current span is `span`, to start children under it. */
  within(parent: Context, span: Span): Context {
    return trace.setSpan(parent, span);
  }

  /** The `traceparent` header value for a span. */
  traceparent(span: Span): string {
    const carrier: Record<string, string> = {};
    this.propagator?.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, { set: (c, k, v) => (c[k] = v) });
    return carrier.traceparent!;
  }

  /** Exports what is pending; the process is stopping. */
  async shutdown(): Promise<void> {
    await this.shutdownProvider?.();
  }
}

export { type Span, SpanKind };
