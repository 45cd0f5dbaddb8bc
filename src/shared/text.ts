// Text from outside (subscription records, events) as the service accepts it: well-formed Unicode,
// and times in one strict form.
//
// Why well-formed. A JavaScript string may hold a lone UTF-16 surrogate, which JSON.parse makes
// from "\ud800" and a producer writes when it cuts an emoji in half. Such a string has no UTF-8
// form: Node writes it to Redis, Kafka and sockets as U+FFFD, so two ids that differ only there
// become one key, and Redis's Lua cjson refuses it outright. It is refused where it comes in.

/**
 * Where the first string that is not well-formed sits in a parsed JSON value (a key or a value),
 * as a path such as `metadata.projectIds[3]`, or null when there is none. Iterative, so a value
 * nested deeper than the stack is walked too. The path never quotes the value.
 */
export function malformedStringPath(root: unknown, rootName = ''): string | null {
  const values: unknown[] = [root];
  const paths: string[] = [rootName];
  while (values.length > 0) {
    const v = values.pop();
    const at = paths.pop()!;
    if (typeof v === 'string') {
      if (!v.isWellFormed()) return at || '(value)';
    } else if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        values.push(v[i]);
        paths.push(`${at}[${i}]`);
      }
    } else if (v !== null && typeof v === 'object') {
      for (const key of Object.keys(v)) {
        if (!key.isWellFormed()) return `${at || '(value)'} (a key)`;
        values.push((v as Record<string, unknown>)[key]);
        paths.push(at ? `${at}.${key}` : key);
      }
    }
  }
  return null;
}

// RFC 3339 date-time: a full date, a time with seconds, an optional fraction, and an offset.
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * Epoch ms of an RFC 3339 time (`2026-12-04T10:00:00.000Z`, `…+02:00`), or null for anything
 * else. Date.parse is no judge: it reads "1" as 2001, a time without an offset as local time (so
 * replicas in different zones disagree), and February 30 as March 2.
 */
export function parseRfc3339(s: string): number | null {
  const m = RFC3339.exec(s);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMin = 0;
  if (!m[8]) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  // A day the month does not have (Feb 30, Apr 31) or a month 13 rolls over: refused.
  if (date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) return null;
  date.setUTCHours(hour, minute, second, Math.floor(Number(`0.${m[7] ?? '0'}`) * 1000));
  return date.getTime() - offsetMin * 60_000;
}
