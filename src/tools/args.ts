import { ERROR_CODES, type ErrorCode, isErrorCode } from '../shared/index.js';

/** An ISO-8601 time argument (--from, --to) as epoch ms; undefined when absent. */
export function parseTimeArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`--${name}: expected an ISO-8601 time, got "${v}"`);
  return t;
}

/** A --reason argument: one of the stable error codes (a typo would silently match nothing). */
export function parseReasonArg(v: string | undefined): ErrorCode | undefined {
  if (v === undefined) return undefined;
  if (!isErrorCode(v)) throw new Error(`--reason: "${v}" is not an error code; one of ${ERROR_CODES.join(', ')}`);
  return v;
}
