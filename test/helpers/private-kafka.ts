import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { logLevel } from 'kafkajs';
import { newKafkaClient } from '../../src/kafka/index.js';
import { defer } from './defer.js';
import { freePort } from './private-redis.js';
import { waitFor } from './wait.js';

const root = path.resolve(import.meta.dirname, '../..');

async function answers(brokers: string): Promise<boolean> {
  const admin = newKafkaClient({
    brokers: [brokers],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    retry: { retries: 0 },
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/**
 * A single-node KRaft broker of the test's own, on a free loopback port, that it may kill and
 * start again. Its data survives a restart (a real broker restart, not a new cluster).
 */
export async function privateKafka(t: TestContext) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blue-kafka-'));
  const prepared = spawnSync(
    process.execPath,
    [path.join(root, 'stack/stack.mjs'), 'kafka-command', dir, String(port)],
    { encoding: 'utf8' },
  );
  if (prepared.status !== 0) throw new Error(`could not prepare a private broker: ${prepared.stderr}`);
  const { cmd, args } = JSON.parse(prepared.stdout) as { cmd: string; args: string[] };
  const logFile = path.join(dir, 'kafka.log');
  let proc: ChildProcess | null = null;
  const k = {
    brokers: `127.0.0.1:${port}`,
    logFile,
    async start() {
      const out = fs.openSync(logFile, 'a');
      proc = spawn(cmd, args, { stdio: ['ignore', out, out] });
      fs.closeSync(out);
      await waitFor(() => answers(k.brokers), { what: `the private broker on ${k.brokers}`, timeoutMs: 60_000 });
    },
    /** SIGKILL: no controlled shutdown, as when a broker's host dies. */
    async kill() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((res) => p.once('exit', res));
      p.kill('SIGKILL');
      await exited;
    },
  };
  defer(t, async () => {
    await k.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await k.start();
  return k;
}
