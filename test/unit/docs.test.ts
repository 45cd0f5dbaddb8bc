// The documentation against the code: every page and heading a source comment points to exists,
// the configuration page lists exactly the variables the config module knows with its defaults,
// and the README and the source files stay a size a newcomer reads.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DEFAULTS, VERSION } from '../../src/config/config.js';
import { tsFiles } from '../helpers/ts-files.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const SRC = path.join(ROOT, 'src');

/** A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/ /g, '-');
}

function anchorsIn(file: string): Set<string> {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1]!)));
}

test('anchors are made as GitHub makes them', () => {
  assert.equal(anchorOf('Endpoint health: HEALTHY / UNHEALTHY'), 'endpoint-health-healthy--unhealthy');
  assert.equal(anchorOf('Owner API and delivery log'), 'owner-api-and-delivery-log');
});

test('every page and heading a source file points to exists', () => {
  const refs = tsFiles(SRC).flatMap((file) =>
    [...fs.readFileSync(file, 'utf8').matchAll(/\b((?:docs\/[\w./-]+|README)\.md)(?:#([\w-]+))?/g)].map((m) => ({
      file: path.relative(ROOT, file),
      page: m[1]!,
      anchor: m[2] ?? null,
    })),
  );
  assert.ok(refs.length >= 10, `found ${refs.length} references`);
  const broken = refs.filter(
    ({ page, anchor }) => !fs.existsSync(path.join(ROOT, page)) || (anchor !== null && !anchorsIn(page).has(anchor)),
  );
  assert.deepEqual(broken, [], 'references to a page or heading that does not exist');
});

test('source comments point to the docs by link, not to a README paragraph by name', () => {
  const named = tsFiles(SRC).filter((file) => /\(README[,)]|see README\b/.test(fs.readFileSync(file, 'utf8')));
  assert.deepEqual(
    named.map((file) => path.relative(ROOT, file)),
    [],
  );
});

test('docs/configuration.md lists every variable with the default the config module has', () => {
  const rows = [
    ...fs.readFileSync(path.join(ROOT, 'docs/configuration.md'), 'utf8').matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]*) \|/gm),
  ];
  const documented = new Map(rows.map((m) => [m[1]!, m[2]!.trim()]));
  assert.deepEqual([...documented.keys()].sort(), Object.keys(DEFAULTS).sort(), 'the same variables');
  for (const [name, value] of Object.entries(DEFAULTS)) {
    const cell = documented.get(name)!;
    // An empty default is written *(empty)*, or as what the service makes of it (`<hostname>-<pid>`).
    if (value === '') assert.ok(cell === '*(empty)*' || /^`<[^`]*>[^`]*`$/.test(cell), `${name}: ${cell}`);
    else assert.equal(cell.replace('<version>', VERSION), `\`${value}\``, name);
  }
});

test('the README stays under 400 lines, and no source file over 400', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').split('\n').length;
  assert.ok(readme < 400, `README.md: ${readme} lines`);
  const long = tsFiles(SRC)
    .map((file) => ({ file: path.relative(ROOT, file), lines: fs.readFileSync(file, 'utf8').split('\n').length - 1 }))
    .filter(({ lines }) => lines > 400);
  assert.deepEqual(long, []);
});
