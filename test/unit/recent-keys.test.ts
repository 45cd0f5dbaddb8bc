import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RecentKeys } from '../../src/shared/recent-keys.js';

test('recent keys: a repeat is seen, the oldest key is forgotten first, and the size stays bounded', () => {
  const r = new RecentKeys(3);
  assert.equal(r.seen('a'), false);
  assert.equal(r.seen('b'), false);
  assert.equal(r.seen('a'), true, 'a repeat');
  assert.equal(r.seen('c'), false);
  assert.equal(r.seen('d'), false, 'evicts a, the oldest');
  assert.equal(r.size, 3);
  assert.equal(r.seen('b'), true);
  assert.equal(r.seen('a'), false, 'a was forgotten');
  for (let i = 0; i < 1000; i++) r.seen(`k${i}`);
  assert.equal(r.size, 3);
});
