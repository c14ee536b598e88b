/**
 * A real Mosquitto (Debian's package) for the tests and benches: on a free port, with
 * persistence so a restart keeps persistent sessions and their queued messages, restartable
 * on the same port.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './free-port.ts';

export const MOSQUITTO = '/usr/sbin/mosquitto';
const MOSQUITTO_PASSWD = '/usr/bin/mosquitto_passwd';

export interface Mosquitto {
  url: string;
  port: number;
  /** SIGTERM (Mosquitto saves its persistence file) and wait for the exit. */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/**
 * `users`: when given, only these may connect (name → password, written with mosquitto_passwd);
 * else anyone may.
 */
export async function startMosquitto(
  dir: string,
  options: { users?: Record<string, string> } = {},
): Promise<Mosquitto> {
  const port = await freePort();
  await mkdir(dir, { recursive: true });
  const conf = join(dir, 'mosquitto.conf');
  const passwords = join(dir, 'passwords');
  for (const [i, [name, password]] of Object.entries(options.users ?? {}).entries())
    execFileSync(MOSQUITTO_PASSWD, [...(i === 0 ? ['-c'] : []), '-b', passwords, name, password]);
  await writeFile(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      ...(options.users ? ['allow_anonymous false', `password_file ${passwords}`] : ['allow_anonymous true']),
      // Run as root (CI), Mosquitto would switch to its own user, which cannot write the
      // test's temp dir: the persistence file would be lost and, with it, every session.
      'user root',
      'persistence true',
      `persistence_location ${dir}/`,
      // Queue what persistent sessions miss while their client is away (the default is 1000).
      'max_queued_messages 100000',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(MOSQUITTO, ['-c', conf], { stdio: 'ignore' });
    await until(() => accepts(port), 10_000, 'Mosquitto to listen');
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once('exit', () => resolve());
      running.kill('SIGTERM');
    });
  };
  await start();
  return { url: `mqtt://127.0.0.1:${port}`, port, stop, start };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
