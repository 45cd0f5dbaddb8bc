/**
 * kafkajs 2.2 schedules a timer for "a past time minus now" between requests, which Node 24 (the
 * production image's runtime) reports on stderr as TimeoutNegativeWarning each time, and runs
 * after 1 ms, which is what kafkajs expects. This silences that one warning, for processes that
 * print machine-readable output (JSON logs, the tools' reports); every other warning is printed
 * as before.
 */
export function silenceKafkajsTimerWarning(): void {
  const printers = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    if (warning.name === 'TimeoutNegativeWarning') return;
    for (const print of printers) print(warning);
  });
}
