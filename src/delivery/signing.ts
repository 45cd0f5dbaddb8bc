import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Blue's documented signature: hex HMAC-SHA256 of the exact body bytes, keyed with the secret. */
export function blueSignature(secret: string, body: string | Buffer): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}

/** Prefix of a Standard Webhooks secret: "whsec_" then the key in base64. */
export const STANDARD_SECRET_PREFIX = 'whsec_';

/**
 * The key a Standard Webhooks signature uses: for a "whsec_<base64>" secret, the decoded bytes,
 * as the official libraries read it (`new Webhook(secret)`); for any other secret, its UTF-8
 * bytes (what receivers of earlier versions verify with, in the libraries' raw-key mode).
 */
export function standardKey(secret: string): Buffer {
  return secret.startsWith(STANDARD_SECRET_PREFIX)
    ? Buffer.from(secret.slice(STANDARD_SECRET_PREFIX.length), 'base64')
    : Buffer.from(secret, 'utf8');
}

/**
 * Standard Webhooks signature: "v1," + base64 HMAC-SHA256 of "id.timestamp.body", keyed with
 * `standardKey(secret)`. `timestampSec` is whole seconds since the epoch.
 */
export function standardSignature(secret: string, id: string, timestampSec: number, body: string | Buffer): string {
  const mac = createHmac('sha256', standardKey(secret));
  mac.update(`${id}.${timestampSec}.`);
  mac.update(body);
  return `v1,${mac.digest('base64')}`;
}

/** Constant-time comparison of two signatures given as strings. */
export function safeEqual(a: string, b: string): boolean {
  // Hash both so the comparison length never depends on the input, then compare in constant time.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length === b.length;
}

/** Checks X-Blue-Signature in constant time. */
export function verifyBlueSignature(secret: string, body: string | Buffer, signature: string): boolean {
  return safeEqual(blueSignature(secret, body), signature);
}

export interface VerifyStandardOptions {
  /** Largest accepted distance between the timestamp and now. Default 300 s. */
  toleranceSec?: number;
  nowSec?: number;
}

/** Checks Standard Webhooks headers: any "v1," signature in the space-separated list may match. */
export function verifyStandardSignature(
  secret: string,
  headers: { id: string; timestamp: string; signature: string },
  body: string | Buffer,
  opts: VerifyStandardOptions = {},
): boolean {
  // The header as received, in its one spelling (digits, no leading zero): Number() would also
  // take " 17…", "017…", "0x…", "1.7e9" and "+…", each a string other than the one signed.
  if (!/^(?:0|[1-9]\d{0,14})$/.test(headers.timestamp)) return false;
  const ts = Number(headers.timestamp);
  const now = opts.nowSec ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - ts) > (opts.toleranceSec ?? 300)) return false;
  const expected = standardSignature(secret, headers.id, ts, body);
  return headers.signature.split(' ').some((s) => safeEqual(s, expected));
}
