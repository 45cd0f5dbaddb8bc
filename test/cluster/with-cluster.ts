// `npm run test:cluster`: starts a real Redis Cluster (3 masters, 3 replicas, from the redis-server
// binary on loopback ports), runs the command after it with REDIS_CLUSTER_NODES set, so the
// dispatchers and clients of those tests use the cluster, then stops the cluster.
import { spawn } from 'node:child_process';
import { startRedisCluster } from '../helpers/redis-cluster.js';

const [command, ...args] = process.argv.slice(2);
if (!command) {
  process.stderr.write('usage: with-cluster.ts COMMAND [ARGS...]\n');
  process.exit(2);
}
const cluster = await startRedisCluster();
process.stderr.write(`[cluster] Redis Cluster up: ${cluster.seeds}\n`);
const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, REDIS_CLUSTER_NODES: cluster.seeds } });
const code = await new Promise<number>((resolve) =>
  child.on('exit', (exitCode, signal) => resolve(exitCode ?? (signal ? 1 : 0))),
);
await cluster.stop();
process.exit(code);
