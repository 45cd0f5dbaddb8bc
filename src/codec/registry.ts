import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import { BlueWebhooksError } from '../shared/index.js';

const schemasDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../schemas');

export type SchemaName = 'blue-event' | 'webhook-subscription' | 'webhook-result' | 'webhook-status';

/** The text of one of the project's Avro schemas (schemas/NAME.avsc). */
export function readSchema(name: SchemaName): string {
  return fs.readFileSync(path.join(schemasDir, `${name}.avsc`), 'utf8');
}

/** Confluent framing: magic byte 0, then a big-endian 4-byte schema id, then the Avro body. */
export const CONFLUENT_HEADER_BYTES = 5;

/** Whether a value is Confluent-framed (JSON values start with `{`, never with byte 0). */
export function isConfluentFramed(buf: Buffer): boolean {
  return buf.length >= CONFLUENT_HEADER_BYTES && buf[0] === 0;
}

/** A schema-registry client whose errors say whether waiting would help. */
export class Registry {
  readonly client: SchemaRegistry;

  constructor(url: string) {
    this.client = new SchemaRegistry({ host: url, retry: { retries: 2, initialRetryTimeInSecs: 0.1 } });
  }

  async register(name: SchemaName, subject: string): Promise<number> {
    try {
      const { id } = await this.client.register({ type: SchemaType.AVRO, schema: readSchema(name) }, { subject });
      return id;
    } catch (err) {
      throw classifyRegistryError(err, `registering ${name} under ${subject}`);
    }
  }

  async encode(id: number, value: unknown): Promise<Buffer> {
    try {
      return await this.client.encode(id, value);
    } catch (err) {
      throw classifyRegistryError(err, `encoding with schema ${id}`);
    }
  }

  /** Decodes a Confluent-framed Avro value. Unknown ids and bad bytes are final; an unreachable registry is not. */
  async decode(buf: Buffer): Promise<unknown> {
    try {
      return await this.client.decode(buf);
    } catch (err) {
      throw classifyRegistryError(err, `decoding schema id ${buf.readInt32BE(1)}`);
    }
  }
}

function classifyRegistryError(err: unknown, what: string): BlueWebhooksError {
  if (err instanceof BlueWebhooksError) return err;
  const status = (err as { status?: number }).status;
  const message = (err as Error)?.message ?? String(err);
  if (err && (err as Error).name === 'ResponseError') {
    if (status === 404) return new BlueWebhooksError('UNKNOWN_SCHEMA', `${what}: schema not found in the registry`);
    // Any other 4xx refuses this request as it is (an id it cannot take): asking again changes nothing.
    if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
      return new BlueWebhooksError('UNKNOWN_SCHEMA', `${what}: the registry refused it (${status})`);
    }
    return new BlueWebhooksError('REGISTRY_UNAVAILABLE', `${what}: ${message}`, { retriable: true, cause: err });
  }
  return new BlueWebhooksError('DECODE_FAILED', `${what}: ${message}`, { cause: err });
}
