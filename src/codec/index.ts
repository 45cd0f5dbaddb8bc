export { type BlueEvent, decodeEvent, type EntityRef, type EventSource, eventToAvro, validateEvent } from './event.js';
export { isJsonObject, type Json, type JsonObject } from './json.js';
export { CONFLUENT_HEADER_BYTES, isConfluentFramed, Registry, readSchema, type SchemaName } from './registry.js';
