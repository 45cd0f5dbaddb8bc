// LoopDelay: how late this process runs its own callbacks (a real loop, blocked on purpose).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoopDelay } from '../../src/shared/loop-delay.js';
import { waitFor } from '../helpers/wait.js';

const block = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

test('a block of the loop shows while it lasts and for a while after, then is forgotten', async () => {
  const delay = new LoopDelay();
  assert.equal(delay.recentMs(), 0, 'nothing before it starts');
  delay.start();
  try {
    block(300);
    assert.ok(delay.recentMs() >= 250, `seen during the block itself: ${delay.recentMs()} ms`);
    // Once its timer has run again, the block is in the window it measured.
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.ok(delay.recentMs() >= 250, `still seen just after: ${delay.recentMs()} ms`);
    await waitFor(() => delay.recentMs() < 100, { what: 'the block forgotten', timeoutMs: 10_000 });
  } finally {
    delay.stop();
  }
});
