import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { createRedisClient } from '../../src/shared/redis.js';
import { freePort } from './private-redis.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

export interface RedisClusterHandle {
  /** host:port of every node: REDIS_CLUSTER_NODES. */
  readonly seeds: string;
  /** A Cluster client of the test's own. */
  client(): Cluster;
  /** The node (host:port) that serves this key now. */
  masterOf(key: string): Promise<string>;
  /** Number of keys starting with `prefix` on each current master. */
  keysPerMaster(prefix: string): Promise<Map<string, number>>;
  /** SIGKILLs the master serving this key and waits until its replica has taken over. */
  killMasterOf(key: string): Promise<{ killed: string; promoted: string }>;
  stop(): Promise<void>;
}

/**
 * A real Redis Cluster from the redis-server binary: 3 masters and one replica each, on loopback
 * ports of their own, nothing on disk. A node that misses 5 s of pings is failed over.
 */
export async function startRedisCluster(): Promise<RedisClusterHandle> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'blue-redis-cluster-'));
  const ports: number[] = [];
  for (let i = 0; i < 6; i++) ports.push(await freePort());
  const procs = new Map<number, ChildProcess>();
  for (const port of ports) {
    const proc = spawn(
      'redis-server',
      [
        '--bind',
        '127.0.0.1',
        '--port',
        String(port),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        // 5 s, not Redis' 15 s, so the failover test is quick; not 2 s either, which a starved CI
        // machine can miss without any node being down.
        '--cluster-node-timeout',
        '5000',
        '--save',
        '',
        '--appendonly',
        'no',
        // A replica's first sync streams the data set (diskless, the default since Redis 7) after
        // a 5 s wait for other replicas to join it; each master here has one, so it need not wait.
        '--repl-diskless-sync-delay',
        '0',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
    procs.set(port, proc);
  }
  const nodes = ports.map((port) => `127.0.0.1:${port}`);
  const killAll = () => {
    for (const proc of procs.values()) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(async () => (await Promise.all(ports.map((port) => ping(port)))).every(Boolean), {
      what: 'six redis-server processes',
    });
    // Masters are the first three; redis-cli gives each one replica from the last three.
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '1', '--cluster-yes']);
    await waitFor(async () => (await Promise.all(ports.map((port) => clusterOk(port)))).every(Boolean), {
      what: 'cluster_state:ok on every node',
      timeoutMs: 30_000,
    });
    // A replica that has not finished its first sync never takes over: wait for every link. Roles
    // are read from the nodes, not assumed from the order redis-cli was given: on a starved machine
    // a master can miss its pings right after the create and be failed over, so the fourth port may
    // be a master by now and the first a replica. The check throws with every node's role and link
    // state, so a timeout says which one is behind.
    await waitFor(
      async () => {
        const states = await Promise.all(ports.map((port) => replication(port)));
        const replicas = states.filter((state) => state.role === 'slave');
        if (replicas.length === 3 && replicas.every((state) => state.link === 'up')) return true;
        throw new Error(
          states.map((state, i) => `${ports[i]}: ${state.role}${state.link ? ` ${state.link}` : ''}`).join(', '),
        );
      },
      { what: 'three replicas synced with their masters', timeoutMs: 60_000, intervalMs: 200 },
    );
  } catch (err) {
    // A cluster that never formed has no handle to stop it: its six servers would outlive the run.
    killAll();
    throw err;
  }

  const admin = new Cluster(
    nodes.map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) })),
    { scaleReads: 'master' },
  );
  const masters = async () => {
    await refreshSlots(admin);
    return admin.nodes('master');
  };
  const handle: RedisClusterHandle = {
    seeds: nodes.join(','),
    client: () => createRedisClient({ url: 'redis://127.0.0.1', clusterNodes: nodes }, {}) as Cluster,
    async masterOf(key) {
      const slot = Number(await admin.call('CLUSTER', 'KEYSLOT', key));
      const slots = (await admin.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no node serves slot ${slot}`);
      return `${range[2][0]}:${range[2][1]}`;
    },
    async keysPerMaster(prefix) {
      const out = new Map<string, number>();
      for (const node of await masters()) {
        let count = 0;
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
          count += keys.length;
          cursor = next;
        } while (cursor !== '0');
        out.set(`${node.options.host}:${node.options.port}`, count);
      }
      return out;
    },
    async killMasterOf(key) {
      const killed = await handle.masterOf(key);
      const port = Number(killed.split(':')[1]);
      const proc = procs.get(port)!;
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGKILL');
      await exited;
      const promoted = await waitFor(
        async () => {
          const survivor = ports.find(
            (p) => p !== port && procs.get(p)?.exitCode === null && procs.get(p)?.signalCode === null,
          )!;
          const probe = new Redis(survivor, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
          probe.on('error', () => {});
          try {
            await probe.connect();
            if (!String(await probe.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) return null;
            const slot = Number(await probe.call('CLUSTER', 'KEYSLOT', key));
            const slots = (await probe.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
            const owner = slots.find(([from, to]) => slot >= from && slot <= to)?.[2];
            return owner && owner[1] !== port ? `${owner[0]}:${owner[1]}` : null;
          } finally {
            probe.disconnect();
          }
        },
        { what: `a replica promoted in place of ${killed}`, timeoutMs: 30_000, intervalMs: 200 },
      );
      return { killed, promoted };
    },
    async stop() {
      admin.disconnect();
      killAll();
    },
  };
  return handle;
}

async function ping(port: number): Promise<boolean> {
  return (await nodeCall(port, 'PING')) === 'PONG';
}

async function clusterOk(port: number): Promise<boolean> {
  return String(await nodeCall(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok');
}

/** A node's role ('master' or 'slave', as Redis names it) and, for a replica, its master_link_status ('up' once synced). */
async function replication(port: number): Promise<{ role: string; link?: string }> {
  const info = String((await nodeCall(port, 'INFO', 'replication')) ?? '');
  const role = /role:(\w+)/.exec(info)?.[1] ?? 'no answer';
  return { role, link: /master_link_status:(\w+)/.exec(info)?.[1] };
}

/** One command to one node; null when it does not answer. */
async function nodeCall(port: number, ...command: string[]): Promise<unknown> {
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return await probe.call(command[0]!, ...command.slice(1));
  } catch {
    return null;
  } finally {
    probe.disconnect();
  }
}

async function refreshSlots(cluster: Cluster): Promise<void> {
  await new Promise<void>((resolve) => {
    (cluster as unknown as { refreshSlotsCache(cb: () => void): void }).refreshSlotsCache(() => resolve());
  });
}
