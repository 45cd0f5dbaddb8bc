#!/usr/bin/env node
// Local stack: an Apache Kafka broker (KRaft, combined broker+controller), Apicurio Registry
// (in-memory, Confluent-compatible API) and Redis, all from official artifacts, on loopback.
//
//   node stack/stack.mjs fetch      fetch the jars with Maven into .stack/ (git-ignored)
//   node stack/stack.mjs up         start whatever is not already answering; print KEY=value endpoints
//   node stack/stack.mjs down       stop what `up` started
//   node stack/stack.mjs env        print the endpoints of the running stack
//   node stack/stack.mjs run -- CMD run CMD with the endpoints in its environment; if this call
//                                   had to start the stack, it stops it again afterwards
//   node stack/stack.mjs kafka-command DIR PORT
//                                   prepare a broker of its own in DIR (kept there, so running
//                                   the printed command again restarts it with its data)
//
// Endpoints default to the local stack and are overridden by the variables the service reads:
// KAFKA_BROKERS, SCHEMA_REGISTRY_URL, REDIS_URL. A component that already answers at its address
// is used as it is; otherwise it is started there (Redis: on a free port when 6379 is silent).
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stripVTControlCharacters } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// STACK_DIR moves the whole ignored folder (jars, data, logs); tests use it to fetch into a scratch folder.
const stackDir = path.resolve(process.env.STACK_DIR ?? path.join(root, '.stack'));
const runDir = path.join(stackDir, 'run');
const endpointsFile = path.join(runDir, 'endpoints.env');
const pom = fs.readFileSync(path.join(root, 'stack', 'pom.xml'), 'utf8');
const KAFKA_VERSION = /<kafka\.version>([^<]+)</.exec(pom)[1];
const APICURIO_VERSION = /<apicurio\.version>([^<]+)</.exec(pom)[1];
const kafkaLibs = path.join(stackDir, `kafka-${KAFKA_VERSION}`, 'libs');
const apicurioHome = path.join(stackDir, `apicurio-${APICURIO_VERSION}`);
const START_TIMEOUT_MS = Number(process.env.STACK_START_TIMEOUT_MS ?? 180_000);

const log = (msg) => process.stderr.write(`[stack] ${msg}\n`);

class StackError extends Error {}

function requireCommand(cmd, why) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  if (r.status !== 0) throw new StackError(`missing prerequisite: '${cmd}' is not on PATH (${why})`);
}

function desiredEndpoints() {
  const brokers = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
  const registry = process.env.SCHEMA_REGISTRY_URL ?? 'http://127.0.0.1:8081/apis/ccompat/v7';
  const redis = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  return { KAFKA_BROKERS: brokers, SCHEMA_REGISTRY_URL: registry, REDIS_URL: redis };
}

function hostPort(s, defaultPort) {
  const u = new URL(s.includes('://') ? s : `tcp://${s}`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port || defaultPort) };
}

function tcpAnswers({ host, port }, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

async function redisAnswers(url) {
  const { host, port } = hostPort(url, 6379);
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG') || buf.startsWith('-NOAUTH'));
    });
    sock.once('error', () => done(false));
  });
}

async function registryAnswers(url) {
  try {
    const res = await fetch(`${url.replace(/\/$/, '')}/subjects`, { signal: AbortSignal.timeout(2000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

// A TCP accept is not enough for Kafka: the broker must serve metadata and have a controller.
async function kafkaAnswers(brokers) {
  if (!(await tcpAnswers(hostPort(brokers.split(',')[0], 9092)))) return false;
  const { Kafka, logLevel } = await import('kafkajs');
  const admin = new Kafka({
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 2000,
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

async function waitFor(name, check, pid) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (pid !== undefined && !isAlive(pid)) {
      throw new StackError(`${name} exited during start-up; see ${path.join(runDir, `${name}.log`)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new StackError(`${name} did not answer within ${START_TIMEOUT_MS} ms; see ${path.join(runDir, `${name}.log`)}`);
}

function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function pidFile(name) {
  return path.join(runDir, `${name}.pid`);
}

function readPid(name) {
  try {
    const pid = Number(fs.readFileSync(pidFile(name), 'utf8'));
    return Number.isInteger(pid) && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function startDetached(name, cmd, args, cwd) {
  const out = fs.openSync(path.join(runDir, `${name}.log`), 'a');
  // Own process group, so `down` can signal the whole tree (the JVM and anything it forks).
  const child = spawn(cmd, args, { cwd, detached: true, stdio: ['ignore', out, out] });
  child.unref();
  fs.writeFileSync(pidFile(name), String(child.pid));
  return child.pid;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

// 3.0.x ships a legacy runner jar; 3.1+ ship a fast-jar layout (quarkus-run.jar).
function apicurioJar() {
  if (!fs.existsSync(apicurioHome)) return undefined;
  const jar = fs.readdirSync(apicurioHome).find((f) => f === 'quarkus-run.jar' || f.endsWith('-runner.jar'));
  return jar && path.join(apicurioHome, jar);
}

const kafkaFetched = () => fs.existsSync(path.join(kafkaLibs, `kafka_2.13-${KAFKA_VERSION}.jar`));

function fetchJars() {
  const kafkaReady = kafkaFetched();
  const apicurioReady = apicurioJar() !== undefined;
  if (kafkaReady && apicurioReady) return;
  requireCommand('mvn', 'Maven fetches the Kafka and Apicurio jars from Maven Central');
  log(`fetching Kafka ${KAFKA_VERSION} and Apicurio Registry ${APICURIO_VERSION} with Maven`);
  const t0 = Date.now();
  fs.mkdirSync(stackDir, { recursive: true });
  const mvn = (args, cwd = stackDir) => {
    const r = spawnSync('mvn', ['-B', '-q', '-Dstyle.color=never', ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    // Maven's output goes to stderr: stdout carries only the KEY=value endpoints that callers parse.
    // Maven 3.8 writes bare colour resets (ESC[0m) even in batch mode with colour off, so escape
    // sequences are taken out, and a quiet run that printed nothing else prints nothing.
    const output = stripVTControlCharacters(`${r.stdout ?? ''}${r.stderr ?? ''}`);
    if (output.trim()) process.stderr.write(output.endsWith('\n') ? output : `${output}\n`);
    if (r.status !== 0)
      throw new StackError(`mvn failed (exit ${r.status ?? r.signal}) while fetching the stack's jars`);
  };
  if (!kafkaReady) mvn(['-f', path.join(root, 'stack', 'pom.xml'), `-Dstack.dir=${stackDir}`, 'package']);
  if (!apicurioReady) {
    // Run without a project, unpack writes a marker under the working folder and later skips the
    // artifact while the marker stays, even when the unpacked files are gone. A throwaway working
    // folder makes it unpack every time it is asked to.
    const scratch = fs.mkdtempSync(path.join(stackDir, 'mvn-'));
    try {
      mvn(
        [
          // 2.8 unpacks without reading the artifact's descriptor, whose parent POM Central lacks.
          'org.apache.maven.plugins:maven-dependency-plugin:2.8:unpack',
          `-Dartifact=io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:tar.gz:all`,
          `-DoutputDirectory=${apicurioHome}`,
        ],
        scratch,
      );
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
  if (!kafkaFetched()) {
    throw new StackError(`Maven finished but ${kafkaLibs} holds no Kafka ${KAFKA_VERSION} jar`);
  }
  if (apicurioJar() === undefined) {
    throw new StackError(`Maven finished but ${apicurioHome} holds no Apicurio runner jar`);
  }
  log(`fetched in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/**
 * Writes a single-node KRaft broker's configuration into `dir` and formats its storage, unless
 * `dir` already holds a formatted broker: then its configuration and data are kept, so starting
 * the command again is a broker restart. Returns the command that runs the broker.
 */
async function prepareKafka(dir, { host, port }) {
  const props = path.join(dir, 'server.properties');
  const dataDir = path.join(dir, 'kafka-data');
  const log4j = path.join(dir, 'log4j2.properties');
  const jvm = ['-Xms256m', '-Xmx1g', `-Dlog4j2.configurationFile=${log4j}`, '-cp', `${kafkaLibs}/*`];
  if (fs.existsSync(path.join(dataDir, 'meta.properties')) && fs.existsSync(props))
    return { cmd: 'java', args: [...jvm, 'kafka.Kafka', props] };

  fs.mkdirSync(dir, { recursive: true });
  fs.rmSync(dataDir, { recursive: true, force: true });
  const controllerPort = await freePort();
  fs.writeFileSync(
    props,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://${host}:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://${host}:${port}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      `log.dirs=${dataDir}`,
      'num.partitions=3',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=10',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      // Tests join and leave many groups; the default 3 s delay would slow every join.
      'group.initial.rebalance.delay.ms=0',
      // Topics are created on purpose (the dispatcher creates its own), never by a typo.
      'auto.create.topics.enable=false',
      // Lets tests observe compaction quickly; a production cluster sets its own.
      'log.cleaner.backoff.ms=1000',
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    log4j,
    [
      'rootLogger.level=WARN',
      'rootLogger.appenderRef.stdout.ref=STDOUT',
      'appender.stdout.type=Console',
      'appender.stdout.name=STDOUT',
      'appender.stdout.layout.type=PatternLayout',
      'appender.stdout.layout.pattern=[%d] %p %m (%c)%n',
      'logger.kafka.name=kafka',
      'logger.kafka.level=INFO',
      '',
    ].join('\n'),
  );
  const fmt = spawnSync(
    'java',
    [...jvm, 'kafka.tools.StorageTool', 'format', '-t', randomUUID().slice(0, 22), '-c', props],
    {
      encoding: 'utf8',
    },
  );
  if (fmt.status !== 0) throw new StackError(`kafka storage format failed:\n${fmt.stdout}${fmt.stderr}`);
  return { cmd: 'java', args: [...jvm, 'kafka.Kafka', props] };
}

async function startKafka(brokers) {
  const { host, port } = hostPort(brokers.split(',')[0], 9092);
  // The shared stack starts empty every time (`down` removes its data).
  fs.rmSync(path.join(runDir, 'kafka-data'), { recursive: true, force: true });
  const { cmd, args } = await prepareKafka(runDir, { host, port });
  const pid = startDetached('kafka', cmd, args, runDir);
  log(`kafka ${KAFKA_VERSION} starting on ${host}:${port} (pid ${pid})`);
  return pid;
}

function startRegistry(url) {
  const { host, port } = hostPort(url, 8081);
  const pid = startDetached(
    'registry',
    'java',
    [
      '-Xms128m',
      '-Xmx768m',
      `-Dquarkus.http.host=${host}`,
      `-Dquarkus.http.port=${port}`,
      // In-memory storage: the default; named so a future default change cannot surprise us.
      '-Dapicurio.storage.kind=sql',
      '-Dapicurio.storage.sql.kind=h2',
      '-Dquarkus.log.level=WARN',
      '-jar',
      apicurioJar(),
    ],
    runDir,
  );
  log(`apicurio registry ${APICURIO_VERSION} starting on ${host}:${port} (pid ${pid})`);
  return pid;
}

async function startRedis() {
  requireCommand('redis-server', 'Redis on 127.0.0.1:6379 does not answer, so the stack starts its own');
  const port = await freePort();
  const dir = path.join(runDir, 'redis-data');
  fs.mkdirSync(dir, { recursive: true });
  const pid = startDetached(
    'redis',
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir],
    runDir,
  );
  log(`redis starting on 127.0.0.1:${port} (pid ${pid})`);
  return { pid, url: `redis://127.0.0.1:${port}` };
}

function writeEndpoints(env) {
  const text = Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
  fs.writeFileSync(endpointsFile, `${text}\n`);
  return text;
}

function readEndpoints() {
  if (!fs.existsSync(endpointsFile)) return undefined;
  const env = {};
  for (const line of fs.readFileSync(endpointsFile, 'utf8').split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
  }
  return env;
}

/** Starts what is missing. Returns the endpoints and whether this call started anything. */
async function up() {
  fs.mkdirSync(runDir, { recursive: true });
  const t0 = Date.now();
  const env = desiredEndpoints();
  const previous = readEndpoints();
  // A Redis this stack started earlier lives on a port only the endpoints file remembers.
  if (!process.env.REDIS_URL && previous?.REDIS_URL && readPid('redis')) env.REDIS_URL = previous.REDIS_URL;
  let started = false;

  const waits = [];
  if (!(await kafkaAnswers(env.KAFKA_BROKERS))) {
    requireCommand('java', 'the Kafka broker is a Java program');
    fetchJars();
    const pid = readPid('kafka') ?? (await startKafka(env.KAFKA_BROKERS));
    waits.push(waitFor('kafka', () => kafkaAnswers(env.KAFKA_BROKERS), pid));
    started = true;
  }
  if (!(await registryAnswers(env.SCHEMA_REGISTRY_URL))) {
    requireCommand('java', 'Apicurio Registry is a Java program');
    fetchJars();
    const pid = readPid('registry') ?? startRegistry(env.SCHEMA_REGISTRY_URL);
    waits.push(waitFor('registry', () => registryAnswers(env.SCHEMA_REGISTRY_URL), pid));
    started = true;
  }
  if (!(await redisAnswers(env.REDIS_URL))) {
    const redis = await startRedis();
    env.REDIS_URL = redis.url;
    waits.push(waitFor('redis', () => redisAnswers(redis.url), redis.pid));
    started = true;
  }
  await Promise.all(waits);
  const text = writeEndpoints(env);
  log(`stack ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (endpoints in ${path.relative(root, endpointsFile)})`);
  return { env, text, started };
}

async function down() {
  for (const name of ['kafka', 'registry', 'redis']) {
    const pid = readPid(name);
    if (pid === undefined) {
      fs.rmSync(pidFile(name), { force: true });
      continue;
    }
    // Kafka shuts down cleanly on SIGTERM (controlled shutdown); give it a bounded grace period.
    process.kill(-pid, 'SIGTERM');
    const deadline = Date.now() + 30_000;
    while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(pid)) process.kill(-pid, 'SIGKILL');
    fs.rmSync(pidFile(name), { force: true });
    log(`${name} stopped`);
  }
  fs.rmSync(path.join(runDir, 'kafka-data'), { recursive: true, force: true });
  fs.rmSync(path.join(runDir, 'redis-data'), { recursive: true, force: true });
  fs.rmSync(endpointsFile, { force: true });
}

async function run(argv) {
  const { env, started } = await up();
  const [cmd, ...args] = argv;
  if (!cmd) throw new StackError('usage: stack.mjs run -- COMMAND [ARGS...]');
  const child = spawn(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  const forward = (sig) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  if (started && process.env.STACK_KEEP !== '1') await down();
  return code;
}

async function main() {
  const [verb, ...rest] = process.argv.slice(2);
  switch (verb) {
    case 'fetch':
      fetchJars();
      return 0;
    case 'up': {
      const { text } = await up();
      process.stdout.write(`${text}\n`);
      return 0;
    }
    case 'down':
      await down();
      return 0;
    case 'env': {
      const env = readEndpoints();
      if (!env) throw new StackError('the stack is not running (no endpoints file); run `npm run stack:up`');
      process.stdout.write(`${writeEndpoints(env)}\n`);
      return 0;
    }
    case 'run':
      return run(rest[0] === '--' ? rest.slice(1) : rest);
    case 'kafka-command': {
      // For fault tests that kill and restart a broker of their own: prints the command as JSON.
      const [dir, port] = rest;
      if (!dir || !Number(port)) throw new StackError('usage: stack.mjs kafka-command DIR PORT');
      requireCommand('java', 'the Kafka broker is a Java program');
      fetchJars();
      process.stdout.write(
        `${JSON.stringify(await prepareKafka(path.resolve(dir), { host: '127.0.0.1', port: Number(port) }))}\n`,
      );
      return 0;
    }
    default:
      throw new StackError('usage: stack.mjs fetch|up|down|env|run -- COMMAND|kafka-command DIR PORT');
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log(err instanceof StackError ? `error: ${err.message}` : (err?.stack ?? String(err)));
    process.exit(1);
  },
);
