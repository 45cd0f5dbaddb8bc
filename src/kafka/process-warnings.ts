/**
 * Node 24 (the production image's runtime) prints a TimeoutNegativeWarning on stderr for a timer
 * set in the past. kafkajs 2.2 set one after every response, in a loop fixed at its source since
 * (src/kafka/request-queue-timer.ts: no such warning in 15 s of a dispatcher starting and idling
 * on Node 24, one before). This stays for the processes whose output is read by machines (JSON
 * logs, the tools' reports): should another kafkajs timer land in the past, which Node runs after
 * 1 ms as kafkajs expects, its warning does not interleave with that output. Every other warning
 * is printed as before.
 */
export function silenceKafkajsTimerWarning(): void {
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning') return;
    for (const print of printers) print(warning);
  });
}
