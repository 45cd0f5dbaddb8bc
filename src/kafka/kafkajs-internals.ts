import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A class inside kafkajs that a fix of ours patches, and what of it the fix relies on. */
export interface KafkajsClass {
  /** Its file under the kafkajs package. */
  modulePath: string;
  className: string;
  /** Methods the fix replaces or calls. */
  methods: readonly string[];
  /** Instance fields the fix reads or writes: each must be assigned in the class's source. */
  fields: readonly string[];
  /** The fix's name, for the error. */
  fix: string;
}

/**
 * The prototype of a class inside kafkajs that a fix of ours patches (rejoin-hold.ts,
 * request-queue-timer.ts), checked to have the methods the fix replaces or calls and the fields it
 * reads. kafkajs is pinned at 2.2.4, its last release, so these do not move; the check makes a
 * changed copy fail loudly at start-up instead of leaving the fix silently wrong. Fields exist only
 * on instances, so they are looked for as assignments (`this.<field> =`) in the class's source.
 */
export function kafkajsPrototype<T>(target: KafkajsClass): T {
  const found = require(`kafkajs/${target.modulePath}`) as { prototype: Record<string, unknown> };
  const source = Function.prototype.toString.call(found);
  const missing = [
    ...target.methods.filter((m) => typeof found.prototype[m] !== 'function').map((m) => `${m}()`),
    ...target.fields.filter((f) => !new RegExp(`this\\.${f}\\s*=[^=]`).test(source)),
  ];
  if (missing.length > 0) {
    throw new Error(`kafkajs ${target.className} has no ${missing.join(', ')}: ${target.fix} cannot be installed`);
  }
  return found.prototype as T;
}
