// Talking to a bench child process over IPC. Its own module so that a bench script with options
// of its own (bench/connections.ts) can use it without the harness, whose option parsing is strict.
import type { ChildProcess } from 'node:child_process';

export function nextMessage<T>(child: ChildProcess, cmd?: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { cmd?: string }) => {
      if (cmd && m.cmd !== cmd) return;
      child.off('message', onMsg);
      child.off('close', onClose);
      resolve(m as T);
    };
    // 'close', not 'exit': a child's last messages can still be on their way when 'exit' fires.
    const onClose = (code: number) =>
      reject(new Error(`${child.spawnargs.at(-1)} exited (${code}) before sending ${cmd ?? 'a message'}`));
    child.on('message', onMsg);
    child.once('close', onClose);
  });
}

export async function ask<T>(child: ChildProcess, msg: object, cmd: string): Promise<T> {
  const reply = nextMessage<T>(child, cmd);
  child.send(msg);
  return reply;
}
