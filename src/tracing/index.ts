export { SpanKind, Tracing, type TracingOptions } from './tracing.js';
