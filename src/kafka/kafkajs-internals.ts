import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * The prototype of a class inside kafkajs that a fix of ours patches (rejoin-hold.ts,
 * request-queue-timer.ts), checked to have the methods the fix replaces or calls. kafkajs 2.2.4 is
 * its last release, so these do not move; the check makes a changed copy fail loudly at start-up
 * instead of leaving the fix silently unapplied.
 */
export function kafkajsPrototype<T>(modulePath: string, className: string, methods: readonly string[], fix: string): T {
  const found = require(modulePath) as { prototype: Record<string, unknown> };
  const missing = methods.filter((m) => typeof found.prototype[m] !== 'function');
  if (missing.length > 0) {
    throw new Error(`kafkajs ${className} has no ${missing.join(' or ')}: ${fix} cannot be installed`);
  }
  return found.prototype as T;
}
