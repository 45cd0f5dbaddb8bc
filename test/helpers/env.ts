import fs from 'node:fs';
import path from 'node:path';

/** Endpoints of the running stack: from the environment (set by `stack.mjs run`), else its endpoints file. */
export function stackEnv(): { KAFKA_BROKERS: string; SCHEMA_REGISTRY_URL: string; REDIS_URL: string } {
  const file = path.resolve(import.meta.dirname, '../../.stack/run/endpoints.env');
  const fromFile: Record<string, string> = {};
  if (fs.existsSync(file)) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) fromFile[line.slice(0, i)] = line.slice(i + 1);
    }
  }
  const pick = (k: string): string => {
    const v = process.env[k] ?? fromFile[k];
    if (!v) throw new Error(`${k} is not set and the stack is not running: run the tests with \`npm test\``);
    return v;
  };
  return {
    KAFKA_BROKERS: pick('KAFKA_BROKERS'),
    SCHEMA_REGISTRY_URL: pick('SCHEMA_REGISTRY_URL'),
    REDIS_URL: pick('REDIS_URL'),
  };
}
