import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { BlueWebhooksError, errorMessage } from '../shared/index.js';

const schemasDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../schemas');

export type SchemaName = 'blue-event' | 'webhook-subscription' | 'webhook-result' | 'webhook-status';

/** The text of one of the project's Avro schemas (schemas/NAME.avsc). */
export function readSchema(name: SchemaName): string {
  return fs.readFileSync(path.join(schemasDir, `${name}.avsc`), 'utf8');
}

/** How long one registration may take. */
const REGISTRY_TIMEOUT_MS = 10_000;

/** Confluent framing: magic byte 0, then a big-endian 4-byte schema id, then the Avro body. */
export const CONFLUENT_HEADER_BYTES = 5;

/** Whether a value is Confluent-framed (JSON values start with `{`, never with byte 0). */
export function isConfluentFramed(buf: Buffer): boolean {
  return buf.length >= CONFLUENT_HEADER_BYTES && buf[0] === 0;
}

/** A schema-registry client whose errors say whether waiting would help. */
export class Registry {
  readonly client: SchemaRegistry;

  /** The base URL without user info, which goes in `authorization` instead. */
  private readonly base: string;
  private readonly authorization: string | undefined;

  /** `url` may carry a user and password (`https://key:secret@registry/`): they are sent as basic auth. */
  constructor(url: string) {
    const u = new URL(url);
    const auth = u.username
      ? { username: decodeURIComponent(u.username), password: decodeURIComponent(u.password) }
      : undefined;
    u.username = '';
    u.password = '';
    this.base = u.href.replace(/\/+$/, '');
    this.authorization = auth && `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
    this.client = new SchemaRegistry({ host: this.base, auth, retry: { retries: 2, initialRetryTimeInSecs: 0.1 } });
  }

  /**
   * Registers one of the project's schemas under `subject` and answers its id. Registering is
   * idempotent: the registry answers the id a schema already has.
   *
   * Why not the client's `register()`: before it registers, it reads the subject's compatibility
   * level and throws unless it is BACKWARD, then sets BACKWARD on a subject it created. That check
   * fails in two ordinary cases: replicas starting together on a new topic (the second one reads the
   * subject between the first one's registration and its setting, when Apicurio answers its global
   * NONE, and exits), and a subject whose level an operator chose. This service publishes its
   * schema; the subject's policy belongs to whoever runs the registry.
   */
  async register(name: SchemaName, subject: string): Promise<number> {
    const what = `registering ${name} under ${subject}`;
    const schema = readSchema(name);
    const route = `/subjects/${encodeURIComponent(subject)}`;
    for (let attempt = 1; ; attempt++) {
      try {
        let answer = await this.post(`${route}/versions`, schema, what);
        // Apicurio answers 409 to the loser of two first registrations at once: the schema is there.
        if (answer.status === 409) {
          const found = await this.post(route, schema, what);
          if (found.status < 300) answer = found;
        }
        if (answer.status >= 300) {
          throw classifyRegistryError(
            { name: 'ResponseError', status: answer.status, message: answer.body.slice(0, 300) },
            what,
          );
        }
        return schemaId(answer.body, what);
      } catch (err) {
        // As the client's own requests: two more tries, 100 then 200 ms apart, when waiting can help.
        if (!(err instanceof BlueWebhooksError && err.retriable) || attempt === 3) throw err;
        await new Promise((r) => setTimeout(r, 100 * attempt));
      }
    }
  }

  private async post(route: string, schema: string, what: string): Promise<{ status: number; body: string }> {
    try {
      const response = await fetch(`${this.base}${route}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/vnd.schemaregistry.v1+json',
          ...(this.authorization ? { authorization: this.authorization } : {}),
        },
        body: JSON.stringify({ schema }),
        signal: AbortSignal.timeout(REGISTRY_TIMEOUT_MS),
      });
      return { status: response.status, body: await response.text() };
    } catch (err) {
      throw new BlueWebhooksError('REGISTRY_UNAVAILABLE', `${what}: ${errorMessage(err)}`, {
        retriable: true,
        cause: err,
      });
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

/** The id in a registry's answer to a registration or a lookup. */
function schemaId(body: string, what: string): number {
  let id: unknown;
  try {
    id = (JSON.parse(body) as { id?: unknown }).id;
  } catch {
    // Left undefined: refused below.
  }
  if (!Number.isSafeInteger(id)) throw new BlueWebhooksError('UNKNOWN_SCHEMA', `${what}: the registry answered no id`);
  return id as number;
}

function classifyRegistryError(err: unknown, what: string): BlueWebhooksError {
  if (err instanceof BlueWebhooksError) return err;
  const status = (err as { status?: number }).status;
  const message = (err as Error)?.message ?? String(err);
  if (err && (err as Error).name === 'ResponseError') {
    if (status === 404) return new BlueWebhooksError('UNKNOWN_SCHEMA', `${what}: schema not found in the registry`);
    // Any other 4xx refuses this request as it is (an id it cannot take): asking again changes nothing.
    if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
      return new BlueWebhooksError('UNKNOWN_SCHEMA', `${what}: the registry refused it (${status}: ${message})`);
    }
    return new BlueWebhooksError('REGISTRY_UNAVAILABLE', `${what}: ${message}`, { retriable: true, cause: err });
  }
  return new BlueWebhooksError('DECODE_FAILED', `${what}: ${message}`, { cause: err });
}
