// A --cpu-prof profile, summed up in the terminal: where the dispatcher's busy time goes.
//
//   node --import tsx bench/profile-summary.ts FILE.cpuprofile [rows]
//   (npm run bench -- --profile prints it after the profiled run)
//
// Two views of the same samples, idle left out:
// - "asked for by": each sample goes to the first frame from the leaf that is a package or a file of
//   the service. A socket write undici makes counts for undici, a Buffer.concat kafkajs makes for
//   kafkajs: what each dependency costs, with the Node internals it calls.
// - "hottest functions": self time per function, as a flame graph's bottom row shows it.
import fs from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The package (node_modules/<name>) or the service's own file a frame belongs to; null for Node and V8. */
function ownerOf(frame: ProfileNode['callFrame']): string | null {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url);
  if (pkg) return pkg[1]!;
  const own = /\/(?:dist|src)\/(.+)$/.exec(frame.url);
  return own ? `service: ${own[1]}` : null;
}

function nameOf(frame: ProfileNode['callFrame']): string {
  const file = frame.url.split('/').slice(-2).join('/');
  return `${frame.functionName || '(anonymous)'}${file ? ` ${file}:${frame.lineNumber + 1}` : ''}`;
}

const percent = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1).padStart(5)}%`;

export function summarizeProfile(file: string, rows = 15): string[] {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
  const selfUs = new Map<number, number>();
  for (const [i, id] of profile.samples.entries()) selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));

  const byOwner = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') continue;
    busyUs += us;
    let owner: string | null = null;
    if (frame.functionName === '(garbage collector)') owner = 'garbage collection';
    for (let at: number | undefined = id; owner === null && at !== undefined; at = parentOf.get(at)) {
      owner = ownerOf(byId.get(at)!.callFrame);
    }
    owner ??= `node: ${nameOf(frame)}`;
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + us);
    const fn = nameOf(frame);
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  const top = (m: Map<string, number>) =>
    [...m]
      .sort((x, y) => y[1] - x[1])
      .slice(0, rows)
      .map(([k, us]) => `  ${percent(us, busyUs)}  ${k}`);
  return [
    `profile ${file}: ${(busyUs / 1e6).toFixed(1)} s busy`,
    'asked for by (the first package or service file from the leaf):',
    ...top(byOwner),
    'hottest functions (self time):',
    ...top(byFunction),
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, rows] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile [rows]');
    process.exit(2);
  }
  console.log(summarizeProfile(file, rows ? Number(rows) : undefined).join('\n'));
}
