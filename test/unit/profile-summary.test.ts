import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { summarizeProfile } from '../../bench/profile-summary.js';

const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });

test('a profile summary charges Node internals to the package that called them, and leaves idle out', () => {
  const undici = '/app/node_modules/undici/lib/dispatcher/client-h1.js';
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 5, 6, 7] },
      { id: 2, callFrame: frame('writeH1', undici), children: [3] },
      { id: 3, callFrame: frame('writeBuffer', 'node:internal/stream_base_commons'), children: [4] },
      { id: 4, callFrame: frame('writev') },
      { id: 5, callFrame: frame('(garbage collector)') },
      { id: 6, callFrame: frame('(idle)') },
      { id: 7, callFrame: frame('eventPayload', 'file:///app/dist/delivery/payload.js') },
    ],
    // 6 ms of writev under undici, 1 in writeH1 itself, 2 of GC, 1 of the service, 90 idle.
    samples: [4, 4, 4, 2, 5, 7, 6],
    timeDeltas: [2000, 2000, 2000, 1000, 2000, 1000, 90_000],
  };
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'profile-')), 'p.cpuprofile');
  fs.writeFileSync(file, JSON.stringify(profile));
  const lines = summarizeProfile(file);
  assert.match(lines[0]!, /0\.0 s busy/); // 10 ms busy: idle is not busy
  const asked = lines.slice(lines.indexOf('asked for by (the first package or service file from the leaf):') + 1);
  assert.deepEqual(asked.slice(0, 3), [
    '   70.0%  undici',
    '   20.0%  garbage collection',
    '   10.0%  service: delivery/payload.js',
  ]);
  const hottest = lines.slice(lines.indexOf('hottest functions (self time):') + 1);
  assert.equal(hottest[0], '   60.0%  writev');
});
