export { type Span, SpanKind, Tracing, type TracingOptions } from './tracing.js';
