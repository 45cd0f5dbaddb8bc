// Arguments of the command-line tools: a typo is an error that names what is accepted.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERROR_CODES } from '../../src/shared/index.js';
import { parseReasonArg, parseTimeArg } from '../../src/tools/args.js';

test('--from/--to take an ISO-8601 time; anything else is an error that quotes it', () => {
  assert.equal(parseTimeArg('from', '2026-11-30T12:00:00Z'), Date.parse('2026-11-30T12:00:00Z'));
  assert.equal(parseTimeArg('to', undefined), undefined);
  assert.throws(() => parseTimeArg('to', 'yesterday'), /--to: expected an ISO-8601 time, got "yesterday"/);
});

test('--reason takes a stable error code only: a typo would silently match nothing', () => {
  assert.equal(parseReasonArg('STALLED'), 'STALLED');
  assert.equal(parseReasonArg(undefined), undefined);
  for (const typo of ['STALED', 'stalled', '', 'STALLED ', 'constructor', '__proto__']) {
    assert.throws(
      () => parseReasonArg(typo),
      (err: Error) => err.message.includes('is not an error code') && err.message.includes('INTERNAL_ERROR'),
    );
  }
  for (const code of ERROR_CODES) assert.equal(parseReasonArg(code), code);
});
