import { spawn } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

/** Runs a command to completion (killed after `timeoutMs`); returns its exit code and its stdout and stderr together. */
export async function runCommand(
  command: string,
  args: string[],
  options: { env: Record<string, string | undefined>; cwd?: string; timeoutMs?: number },
): Promise<{ code: number | null; output: string }> {
  const proc = spawn(command, args, { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (c) => {
    output += c;
  });
  proc.stderr.on('data', (c) => {
    output += c;
  });
  const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 90_000);
  const code = await new Promise<number | null>((r) => proc.on('exit', r));
  clearTimeout(timer);
  return { code, output };
}

/** Runs one of the project's TypeScript entry points to completion; returns its exit code and output. */
export function runScript(
  file: string,
  args: string[],
  env: Record<string, string | undefined>,
  timeoutMs = 90_000,
): Promise<{ code: number | null; output: string }> {
  return runCommand(process.execPath, ['--import', 'tsx', path.join(root, file), ...args], { env, timeoutMs });
}
