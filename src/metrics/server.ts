import http from 'node:http';
import { type ListeningServer, listen } from '../shared/index.js';
import type { Metrics } from './metrics.js';

/** One readiness condition: returns null when fine, else what is wrong. */
export type HealthCheck = () => string | null | Promise<string | null>;

export interface MetricsServerOptions {
  port: number;

  host: string;
  metrics: Metrics;
  /** Named checks behind /readyz; all must pass. */
  readiness: Record<string, HealthCheck>;
}

export type MetricsServer = ListeningServer;

/** Serves GET /metrics, /healthz (alive) and /readyz (ready, or a JSON list of what is not). */
export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    void handle(req, res, opts).catch((err) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
    });
  });
  server.keepAliveTimeout = 5000;
  return listen(server, opts.port, opts.host);
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, opts: MetricsServerOptions) {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET') {
    res.writeHead(405, { allow: 'GET' }).end();
    return;
  }
  if (path === '/metrics') {
    // Readiness as a metric too, so that an alert can say which replica is not ready and why.
    const failing = await failingChecks(opts.readiness);
    opts.metrics.ready.reset();
    for (const check of Object.keys(opts.readiness)) opts.metrics.ready.set({ check }, check in failing ? 0 : 1);
    const body = await opts.metrics.registry.metrics();
    res.writeHead(200, { 'content-type': opts.metrics.registry.contentType }).end(body);
  } else if (path === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"alive"}');
  } else if (path === '/readyz') {
    const failing = await failingChecks(opts.readiness);
    const ready = Object.keys(failing).length === 0;
    res
      .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
      .end(JSON.stringify(ready ? { status: 'ready' } : { status: 'not ready', failing }));
  } else {
    res.writeHead(404).end();
  }
}

/** The readiness checks that fail, with what is wrong. */
async function failingChecks(readiness: Record<string, HealthCheck>): Promise<Record<string, string>> {
  const failing: Record<string, string> = {};
  await Promise.all(
    Object.entries(readiness).map(async ([name, check]) => {
      try {
        const problem = await check();
        if (problem) failing[name] = problem;
      } catch (err) {
        failing[name] = (err as Error).message;
      }
    }),
  );
  return failing;
}
