import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { embeddedIPv4, isInternalAddress, TargetGuard, TargetRefusedError } from '../../src/delivery/target-guard.js';
import { waitFor } from '../helpers/wait.js';

describe('internal addresses are refused', () => {
  const internal = [
    '127.0.0.1',
    '127.255.255.254',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '100.127.255.255',
    '0.0.0.0',
    '224.0.0.1',
    '239.255.255.250',
    '255.255.255.255',
    '240.0.0.1',
    '::1',
    '::',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'fe80::1%eth0',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::ffff:169.254.169.254',
    '::127.0.0.1',
    '::a00:1',
    '64:ff9b::a9fe:a9fe',
    '2002:7f00:1::1',
    '2001:db8::1',
    // IPv4-mapped (any), IPv4-translated, documentation (RFC 9637), 6to4 relay anycast.
    '::ffff:8.8.8.8',
    '::ffff:0:808:808',
    '3fff::1',
    '3fff:fff:ffff::1',
    '192.88.99.1',
    // Not globally reachable per the IANA registries, or a cloud's metadata service.
    '168.63.129.16',
    '100.100.100.200',
    '2001:2::1',
    '2001:10::1',
    '2001:20::1',
    '5f00::1',
    '::2',
    '1::1',
    'ff:ffff::1',
    '100:0:0:1::1',
    'fd00:ec2::254',
  ];
  for (const a of internal) test(a, () => assert.ok(isInternalAddress(a)));
});

describe('public addresses pass', () => {
  for (const a of [
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '100.128.0.1',
    '2606:4700:4700::1111',
    '64:ff9b::808:808',
    '3fff:1000::1',
    '192.88.100.1',
  ]) {
    test(a, () => assert.ok(!isInternalAddress(a)));
  }
});

test('embedded IPv4 forms are recognised', () => {
  assert.equal(embeddedIPv4('::ffff:7f00:1'), '127.0.0.1');
  assert.equal(embeddedIPv4('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(embeddedIPv4('::7f00:1'), '127.0.0.1');
  assert.equal(embeddedIPv4('2002:a00:1::'), '10.0.0.1');
  assert.equal(embeddedIPv4('2606:4700::1'), null);
});

describe('URL spellings of loopback are refused before any connection', () => {
  const guard = new TargetGuard();
  const urls = [
    'http://127.0.0.1/',
    'http://2130706433/',
    'http://0x7f.0.0.1/',
    'http://0177.0.0.1/',
    'http://0x7f000001/',
    'http://127.1/',
    'http://[::1]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:7f00:1]/',
    'http://169.254.169.254/latest/meta-data',
    'http://0/',
    'https://[fe80::1]/',
  ];
  for (const u of urls) test(u, () => assert.throws(() => guard.checkUrl(new URL(u)), TargetRefusedError));
  test('other schemes', () => assert.throws(() => guard.checkUrl(new URL('file:///etc/passwd')), /scheme/));
});

test('the allow-list lets through exactly what it names', () => {
  const guard = new TargetGuard(['127.0.0.1/32', '10.1.0.0/16', 'localhost', '*.internal.example', '::1']);
  assert.doesNotThrow(() => guard.checkUrl(new URL('http://127.0.0.1:8080/')));
  assert.doesNotThrow(() => guard.checkUrl(new URL('http://2130706433/')), 'same address, other spelling');
  assert.doesNotThrow(() => guard.checkUrl(new URL('http://[::ffff:127.0.0.1]/')), 'mapped form of an allowed address');
  assert.doesNotThrow(() => guard.checkUrl(new URL('http://[::1]/')));
  assert.throws(() => guard.checkUrl(new URL('http://127.0.0.2/')), TargetRefusedError);
  assert.ok(guard.isAllowedAddress('10.1.200.3'));
  assert.ok(!guard.isAllowedAddress('10.2.0.1'));
  assert.ok(guard.isAllowedHost('LOCALHOST') && guard.isAllowedHost('a.internal.example'));
  assert.ok(!guard.isAllowedHost('internal.example.com') && !guard.isAllowedHost('localhost.evil.com'));
});

test('a host name that resolves to an internal address is refused at lookup, and allowed when listed', async () => {
  const lookup = (g: TargetGuard) =>
    new Promise<unknown>((resolve) => g.lookup('localhost', { all: true }, (err, addrs) => resolve(err ?? addrs)));
  assert.ok((await lookup(new TargetGuard())) instanceof TargetRefusedError);
  assert.ok(Array.isArray(await lookup(new TargetGuard(['localhost']))));
  assert.ok(Array.isArray(await lookup(new TargetGuard(['127.0.0.0/8', '::1/128']))));
});

test('allow-list rules match in the family of the destination: ::/0 and ::ffff:0:0/96 let no IPv4 address through', () => {
  for (const rule of ['::/0', '::ffff:0:0/96', '::/8']) {
    const guard = new TargetGuard([rule]);
    for (const v4 of ['169.254.169.254', '127.0.0.1', '10.0.0.1']) {
      assert.ok(!guard.isAllowedAddress(v4), `${rule} does not allow ${v4}`);
      assert.throws(() => guard.checkUrl(new URL(`http://${v4}/`)), TargetRefusedError, `${rule}: ${v4}`);
    }
  }
  assert.ok(new TargetGuard(['::/0']).isAllowedAddress('fd00::1'), 'an IPv6 rule still allows IPv6');
  assert.ok(new TargetGuard(['0.0.0.0/0']).isAllowedAddress('10.0.0.1'), 'and an IPv4 rule IPv4');
  assert.ok(!new TargetGuard(['0.0.0.0/0']).isAllowedAddress('fd00::1'));
});

test('host patterns match names only, never an IP literal', () => {
  const guard = new TargetGuard(['*.0.0.1', '127.0.0.1.nip.example', '*.1']);
  assert.throws(() => guard.checkUrl(new URL('http://127.0.0.1/')), TargetRefusedError);
  assert.ok(!guard.isAllowedHost('127.0.0.1'));
  assert.ok(!guard.isAllowedHost('[::1]'));
  assert.ok(guard.isAllowedHost('a.0.0.1'), 'a name ending so still matches');
});

test('rules that allow every address of a family are named for a warning at start', () => {
  assert.deepEqual(new TargetGuard(['0.0.0.0/0', '::/0', '10.0.0.0/8', 'localhost']).allowsEverything, [
    '0.0.0.0/0',
    '::/0',
  ]);
  assert.deepEqual(new TargetGuard(['127.0.0.1/32']).allowsEverything, []);
});

test('answers are used again for the cache time, asked once for lookups together, and judged on every use', async () => {
  let answer = '93.184.215.14';
  let asked = 0;
  const pending: (() => void)[] = [];
  const resolve = (_name: string, _o: unknown, cb: (e: null, a: { address: string; family: number }[]) => void) => {
    asked++;
    const list = [{ address: answer, family: 4 }];
    pending.push(() => cb(null, list));
  };
  const guard = new TargetGuard([], { resolve, cacheTtlMs: 200 });
  const lookup = () =>
    new Promise<unknown>((done) => {
      guard.lookup('hooks.example', { all: true }, (err, addrs) => done(err ?? addrs));
      for (const answerNow of pending.splice(0)) answerNow();
    });
  const together = [lookup(), lookup(), lookup()];
  for (const answerNow of pending.splice(0)) answerNow();
  assert.deepEqual(await Promise.all(together), Array(3).fill([{ address: '93.184.215.14', family: 4 }]));
  assert.equal(asked, 1, 'three lookups together: one question');
  await lookup();
  assert.equal(asked, 1, 'within the cache time: none');
  // Past the cache time, the name points inside: asked again, and refused.
  answer = '10.0.0.7';
  await waitFor(
    async () => {
      await lookup();
      return asked === 2;
    },
    { what: 'the answer to expire', timeoutMs: 5000 },
  );
  assert.ok((await lookup()) instanceof TargetRefusedError, 'the cached answer is judged on this use too');
  assert.equal(guard.resolved, 2);
});
