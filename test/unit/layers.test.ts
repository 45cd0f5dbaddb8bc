// The layering of src/, checked from the imports themselves (`npm run test:unit` runs it):
// - a file imports only from its own folder or from a folder on a lower layer;
// - another folder is reached through its index.ts, its public face, never a file inside it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { tsFiles } from '../helpers/ts-files.js';

const SRC = path.resolve(import.meta.dirname, '../../src');

/**
 * Bottom first. A folder may import from any folder on a lower line; folders on one line do not
 * import each other. A new folder goes here, where its imports put it.
 */
const LAYERS = [
  ['shared'],
  ['tracing', 'config', 'metrics', 'codec', 'ordering'],
  ['kafka', 'breaker'],
  ['subscriptions'],
  ['delivery'],
  ['results'],
  ['retries', 'demo'],
  ['runner', 'owner'],
  ['ingest'],
  ['replay', 'app.ts'],
  ['tools', 'main.ts'],
];
const rank = new Map(LAYERS.flatMap((names, layer) => names.map((name) => [name, layer] as const)));

const IMPORT =
  /(?:import|export)\s+(?:type\s+)?(?:\{[^}]*\}|\*(?:\s+as\s+\w+)?|\w+)\s+from\s+'(\.[^']*)'|import\('(\.[^']*)'\)/g;

interface Import {
  file: string;
  spec: string;
  from: string;
  to: string;
  target: string;
}

/** The top folder of src/ a path is in, or the file's own name for a file at the top. */
const placeOf = (file: string) => path.relative(SRC, file).split(path.sep)[0]!;

function crossImports(): Import[] {
  return tsFiles(SRC).flatMap((file) =>
    [...fs.readFileSync(file, 'utf8').matchAll(IMPORT)].flatMap((m) => {
      const spec = (m[1] ?? m[2])!;
      const target = path.resolve(path.dirname(file), spec);
      const from = placeOf(file);
      const to = placeOf(target).replace(/\.js$/, '.ts');
      return from === to
        ? []
        : [{ file: path.relative(SRC, file), spec, from, to, target: path.relative(SRC, target) }];
    }),
  );
}

test('every top folder and file of src/ has its place in the layers', () => {
  const places = fs
    .readdirSync(SRC)
    .filter((name) => name.endsWith('.ts') || fs.statSync(path.join(SRC, name)).isDirectory());
  assert.deepEqual(
    places.filter((place) => !rank.has(place)),
    [],
    'add them to LAYERS',
  );
});

test('no import points up the layers, or across one layer', () => {
  const imports = crossImports();
  assert.ok(
    imports.length > 50,
    `only ${imports.length} imports across folders were found: is the pattern still right?`,
  );
  const upward = imports
    .filter((i) => rank.get(i.to)! >= rank.get(i.from)!)
    .map((i) => `${i.file} -> ${i.spec} (${i.from} is not above ${i.to})`);
  assert.deepEqual(upward, []);
});

test('another folder is imported through its index.ts only', () => {
  const inside = crossImports()
    .filter((i) => i.to !== i.target.replace(/\.js$/, '.ts') && path.basename(i.target) !== 'index.js')
    .map((i) => `${i.file} -> ${i.spec}`);
  assert.deepEqual(inside, []);
});

test('an index.ts only re-exports its own folder', () => {
  const outside = tsFiles(SRC)
    .filter((file) => path.basename(file) === 'index.ts')
    .flatMap((file) =>
      [...fs.readFileSync(file, 'utf8').matchAll(IMPORT)].map((m) => `${path.relative(SRC, file)} -> ${m[1] ?? m[2]}`),
    )
    .filter((line) => !/-> \.\/[^/]+\.js$/.test(line));
  assert.deepEqual(outside, []);
});
