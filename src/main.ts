import { App } from './app.js';
import { ConfigError, loadConfig } from './config/index.js';
import { silenceKafkajsTimerWarning } from './kafka/index.js';
import { createLogger, errorMessage, redactText } from './shared/index.js';

async function main(): Promise<void> {
  silenceKafkajsTimerWarning();
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      // A bad value is named, never echoed with its credentials (REDIS_URL=redis://:secret@…).
      process.stderr.write(`blue-webhooks: ${redactText(err.message)}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger({
    level: config.logLevel,
    bindings: { service: 'blue-webhooks', instance: config.instanceId },
  });
  const app = new App(config, log);

  let stopping = false;
  const shutdown = (signal: string) => {
    log.info('signal received', { signal });
    if (stopping) return;
    stopping = true;
    void app.stop().then(
      () => process.exit(0),
      (err) => {
        log.error('shutdown failed', { error: errorMessage(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => log.error('unhandled rejection', { error: errorMessage(err) }));

  await app.start();
}

main().catch((err) => {
  process.stderr.write(`blue-webhooks: fatal: ${redactText(err instanceof Error ? String(err.stack) : String(err))}\n`);
  process.exit(1);
});
