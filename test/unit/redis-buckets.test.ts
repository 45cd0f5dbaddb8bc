// The bucket of an id decides where its keys live in Redis: a change of the hash would leave every
// table, circuit and marker written by the previous version where the new one never looks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bucketOf, bucketPrefix, REDIS_BUCKETS } from '../../src/shared/redis.js';

test('bucketOf is pinned (FNV-1a mod 64) and spreads ids evenly', () => {
  assert.deepEqual(['', 'proj_0', 'clakt90vu000bvt64hhffqleq', 'wh_1', 'ünï'].map(bucketOf), [5, 33, 3, 10, 32]);
  const counts = new Array<number>(REDIS_BUCKETS).fill(0);
  for (let i = 0; i < 64_000; i++) counts[bucketOf(`proj_${i}`)]!++;
  assert.ok(
    Math.min(...counts) > 900 && Math.max(...counts) < 1100,
    `per bucket: ${Math.min(...counts)}–${Math.max(...counts)}`,
  );
});

test("a bucket's keys carry its number as their only hash tag, whatever the prefix", () => {
  assert.equal(bucketPrefix('bw:t3:', 17), 'bw:t3:{17}:');
  // Redis hashes the first {…}: an id with braces after the tag does not move the key.
  const key = `${bucketPrefix('bw:', 17)}home:{evil}`;
  assert.equal(key.slice(key.indexOf('{') + 1, key.indexOf('}')), '17');
});
