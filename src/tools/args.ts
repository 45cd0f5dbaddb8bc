/** An ISO-8601 time argument (--from, --to) as epoch ms; undefined when absent. */
export function parseTimeArg(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`--${name}: expected an ISO-8601 time, got "${v}"`);
  return t;
}
