import type { TestContext } from 'node:test';

const stacks = new WeakMap<TestContext, (() => unknown)[]>();

/**
 * Registers a cleanup that runs when the test ends, in reverse order of registration
 * (node:test runs `t.after` hooks in registration order, which would close a client
 * before the resources it created are removed).
 */
export function defer(t: TestContext, fn: () => unknown): void {
  let stack = stacks.get(t);
  if (!stack) {
    const fns: (() => unknown)[] = [];
    stack = fns;
    stacks.set(t, fns);
    t.after(async () => {
      for (const f of fns.reverse()) {
        try {
          await f();
        } catch (err) {
          process.stderr.write(`cleanup failed: ${(err as Error).message}\n`);
        }
      }
    });
  }
  stack.push(fn);
}
