import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PartitionTracker } from '../../src/kafka/offset-tracker.js';

test('only the contiguous prefix of finished offsets is committable', () => {
  const t = new PartitionTracker();
  const a = t.add(10);
  const b = t.add(11);
  const c = t.add(12);
  assert.equal(t.committable(), null);
  c.finishOne();
  b.finishOne();
  assert.equal(t.committable(), null, '10 is still under way');
  a.finishOne();
  assert.equal(t.committable(), 13);
  assert.equal(t.pending, 0);
});

test('an offset split into pieces finishes with its last piece; zero pieces finish at once', () => {
  const t = new PartitionTracker();
  const a = t.add(0);
  a.expect(3);
  const b = t.add(1);
  b.expect(0);
  a.finishOne();
  a.finishOne();
  assert.equal(t.committable(), null);
  a.finishOne();
  assert.equal(t.committable(), 2);
});

test('re-fetched offsets are recognised, and offsets must come in order', () => {
  const t = new PartitionTracker();
  t.add(5);
  assert.ok(t.has(5) && t.has(3) && !t.has(6));
  assert.throws(() => t.add(5));
});

test('a long run stays compact and correct', () => {
  const t = new PartitionTracker();
  const entries = Array.from({ length: 5000 }, (_, i) => t.add(i));
  for (let i = entries.length - 1; i >= 0; i -= 2) entries[i]!.finishOne();
  assert.equal(t.committable(), null);
  for (let i = 0; i < entries.length; i += 2) entries[i]!.finishOne();
  assert.equal(t.committable(), 5000);
  assert.equal(t.pending, 0);
});
