// fast-check properties for the security review's hostile shapes (issue 24): redaction, the
// allow-list's address families, signature timestamps. FUZZ_SEED replays a failing seed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { standardSignature, verifyStandardSignature } from '../../src/delivery/signing.js';
import { isInternalAddress, TargetGuard } from '../../src/delivery/target-guard.js';
import { createLogger, redactBody, redactText } from '../../src/shared/logger.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261204);
const options = { seed: SEED, numRuns: 2000 };

// What a password or token may hold: anything but what ends a URL's authority or a line, lone
// surrogates, quotes, spaces and '@' included.
const secretText = fc
  .string({ unit: 'binary', minLength: 6, maxLength: 24 })
  .filter((s) => !/[/\\?#\r\n]/.test(s) && !s.includes('redacted'));
const tokenText = fc
  .string({ minLength: 6, maxLength: 24 })
  .filter((s) => /^[^\s&#=]+$/.test(s) && !s.includes('redacted'));

test('no password or query value of a URL survives redaction, whatever it holds', () => {
  fc.assert(
    fc.property(
      secretText,
      tokenText,
      fc.constantFrom('https://', 'http://', 'https:', 'http:\\\\', 'redis://', 'wss://'),
      fc.constantFrom('?token=', '?a=1&apikey=', '#access_token=', '?x=1#state=2&code='),
      (password, token, scheme, query) => {
        const text = `failed: ${scheme}user:${password}@hooks.example.com/in${scheme === 'redis://' ? '' : `${query}${token}`} (retrying)`;
        const out = redactText(text);
        assert.ok(!out.includes(password), `password kept: ${JSON.stringify(out)}`);
        if (scheme !== 'redis://') assert.ok(!out.includes(token), `token kept: ${JSON.stringify(out)}`);
      },
    ),
    options,
  );
});

test('a secret under a sensitive name, at any depth, in keys and errors, is never written', () => {
  const name = fc.constantFrom(
    'secret',
    'password',
    'pwd',
    'pass',
    'passphrase',
    'auth',
    'key',
    'bearer',
    'Authorization',
    'api_key',
    'x-blue-signature',
  );
  fc.assert(
    fc.property(name, secretText, fc.integer({ min: 0, max: 40 }), fc.boolean(), (field, secret, depth, inArray) => {
      let value: unknown = { [field]: secret };
      for (let i = 0; i < depth; i++) value = inArray ? [value] : { nested: value };
      const lines: string[] = [];
      createLogger({ write: (l) => lines.push(l) }).warn('x', {
        value,
        error: Object.assign(new Error('e'), { code: { [field]: secret } }),
      });
      assert.ok(!lines[0]!.includes(JSON.stringify(secret).slice(1, -1)), lines[0]);
    }),
    options,
  );
});

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
const ipv6Rule = fc.oneof(
  fc.constantFrom('::/0', '::ffff:0:0/96', '::/8', '::ffff:0:0/80', '::/96'),
  fc
    .tuple(
      fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }),
      fc.integer({ min: 0, max: 128 }),
    )
    .map(([g, bits]) => `${g.map((x) => x.toString(16)).join(':')}/${bits}`),
);

test('IPv6 allow-list rules never let an IPv4 destination through', () => {
  fc.assert(
    fc.property(fc.array(ipv6Rule, { minLength: 1, maxLength: 4 }), ipv4, (rules, address) => {
      const guard = new TargetGuard(rules);
      assert.equal(guard.isAllowedAddress(address), !isInternalAddress(address), `${rules} / ${address}`);
    }),
    options,
  );
});

test('a timestamp that is not the digits as sent never verifies', () => {
  const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
  const now = 1_700_000_000;
  const signature = standardSignature(secret, 'msg_1', now, '{}');
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string(),
        fc.constantFrom(` ${now}`, `${now} `, `+${now}`, `0x${now.toString(16)}`, `${now}.0`, '1.7e9', `0${now}`),
      ),
      (timestamp) => {
        fc.pre(timestamp !== String(now));
        assert.ok(
          !verifyStandardSignature(secret, { id: 'msg_1', timestamp, signature }, '{}', { nowSec: now }),
          JSON.stringify(timestamp),
        );
      },
    ),
    options,
  );
});

test("an endpoint's answer, as the log keeps it, holds no value of a JSON member or form field named like a secret", () => {
  const name = fc.constantFrom(
    'token',
    'access_token',
    'password',
    'secret',
    'apiKey',
    'Authorization',
    'client_secret',
  );
  const value = fc
    .string({ minLength: 6, maxLength: 24 })
    .filter((s) => /^[^\s&"\\=]+$/.test(s) && !s.includes('redacted'));
  const around = fc.string({ maxLength: 20 }).filter((s) => !/["\\=&]/.test(s));
  fc.assert(
    fc.property(name, value, around, fc.boolean(), fc.boolean(), (field, secret, text, json, spaced) => {
      const body = json
        ? `{"ok":false,"${field}"${spaced ? ' : ' : ':'}"${secret}","note":"${text}"}`
        : `${text}&${field}=${secret}&next=1`;
      const kept = redactBody(body);
      assert.ok(!kept.includes(secret), kept);
      assert.ok(kept.includes(field), 'the name stays');
    }),
    options,
  );
  assert.equal(redactBody('{"status":"ok","id":"abc"}'), '{"status":"ok","id":"abc"}', 'other members stay');
});
