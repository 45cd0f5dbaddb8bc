import type { Type } from 'avsc';
import { CONFLUENT_HEADER_BYTES, type Registry, type SchemaName } from '../codec/index.js';
import type { KafkaWriter } from '../kafka/index.js';

export interface AvroPublisherOptions {
  writer: KafkaWriter;
  registry: Registry;
  /** The schema, registered under "<topic>-value". */
  schema: SchemaName;
  topic: string;
}

/** The scratch's first size: an outcome is about 250 bytes, a status event less. */
const SCRATCH_BYTES = 4096;

/**
 * Publishes Avro records (outcomes, endpoint status) to one topic, Confluent-framed. `publish`
 * resolves once Kafka has acknowledged the record (see KafkaWriter).
 */
export class AvroPublisher<T extends object> {
  private type: Type | null = null;
  /**
   * Where each record is encoded, behind its 5-byte Confluent header (written once), before it is
   * copied out at its exact size. Why not `type.toBuffer()`: it allocates a zero-filled buffer
   * outside Node's pool for every record, and the framing then copied it into another one; with
   * one outcome per delivery that was half the encoding's CPU.
   */
  private scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

  constructor(private readonly options: AvroPublisherOptions) {}

  /** Registers the schema under "<topic>-value". */
  async start(): Promise<void> {
    const id = await this.options.registry.register(this.options.schema, `${this.options.topic}-value`);
    this.type = (await this.options.registry.client.getSchema(id)) as unknown as Type;
    this.scratch.writeUInt8(0, 0);
    this.scratch.writeInt32BE(id, 1);
  }

  publish(key: string, record: T): Promise<void> {
    return this.options.writer.write(this.options.topic, { key, value: this.encode(record) });
  }

  /** The record, Confluent-framed (magic byte 0, the schema id, then the Avro binary). */
  encode(record: T): Buffer {
    if (!this.type) throw new Error('AvroPublisher.start() was not called');
    let end = this.type.encode(record, this.scratch, CONFLUENT_HEADER_BYTES);
    if (end < 0) {
      // Too large for the scratch: avsc says by how much. Grow it (keeping the header) and encode again.
      const grown = Buffer.allocUnsafeSlow(this.scratch.length - end);
      this.scratch.copy(grown, 0, 0, CONFLUENT_HEADER_BYTES);
      this.scratch = grown;
      end = this.type.encode(record, this.scratch, CONFLUENT_HEADER_BYTES);
    }
    const value = Buffer.allocUnsafe(end);
    this.scratch.copy(value, 0, 0, end);
    return value;
  }
}
