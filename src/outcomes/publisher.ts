import type { Type } from 'avsc';
import type { Registry, SchemaName } from '../codec/index.js';
import type { KafkaWriter } from '../kafka/index.js';

export interface AvroPublisherOptions {
  writer: KafkaWriter;
  registry: Registry;
  /** The schema, registered under "<topic>-value". */
  schema: SchemaName;
  topic: string;
}

/**
 * Publishes Avro records (outcomes, endpoint status) to one topic, Confluent-framed. `publish`
 * resolves once Kafka has acknowledged the record (see KafkaWriter).
 */
export class AvroPublisher<T extends object> {
  private type: Type | null = null;
  private readonly header = Buffer.alloc(5);

  constructor(private readonly options: AvroPublisherOptions) {}

  /** Registers the schema under "<topic>-value". */
  async start(): Promise<void> {
    const id = await this.options.registry.register(this.options.schema, `${this.options.topic}-value`);
    this.type = (await this.options.registry.client.getSchema(id)) as unknown as Type;
    this.header.writeUInt8(0, 0);
    this.header.writeInt32BE(id, 1);
  }

  publish(key: string, record: T): Promise<void> {
    if (!this.type) throw new Error('AvroPublisher.start() was not called');
    return this.options.writer.write(this.options.topic, {
      key,
      value: Buffer.concat([this.header, this.type.toBuffer(record)]),
    });
  }
}
