/** How often a drain looks whether the work under way has finished. */
const DRAIN_POLL_MS = 20;

/**
 * Waits until no work is `pending` or `deadline` (epoch ms) has passed, running `tick` between
 * looks (a heartbeat); the work still pending at the end.
 */
export async function drainUntil(
  pending: () => number,
  deadline: number,
  tick: () => Promise<void> = async () => {},
): Promise<number> {
  while (pending() > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    await tick();
  }
  return pending();
}
