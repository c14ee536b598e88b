/**
 * Runs the edgeloop CLI for tests that hold a command's exit code and output: in-process
 * (`main(argv)`, stdout and stderr captured) or as a user runs it, in a child process.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { vi } from 'vitest';
import { main } from '../../infra/cli/main.ts';
import type { Command } from '../../shared/cli/command.ts';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `commands` replaces the registered command list (e.g. with a test command). */
export async function runCli(argv: string[], commands?: readonly Command[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => err.push(String(chunk)) > 0);
  try {
    const code = await (commands ? main(argv, commands) : main(argv));
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
}

/** The CLI entry point as installed (`edgeloop` is `node infra/cli/bin.js`). */
export const cliBin = join(import.meta.dirname, '../../infra/cli/bin.js');

/** `edgeloop ARGV` started in a child process (no output kept), for a test to kill or await. */
export function spawnBin(argv: string[]): { child: ChildProcess; exit: Promise<number | null> } {
  const child = spawn(process.execPath, [cliBin, ...argv], { stdio: 'ignore' });
  return { child, exit: new Promise((resolve) => child.on('exit', resolve)) };
}

/**
 * Runs `edgeloop ARGV` in a child process with pipes (not a terminal) and NO_COLOR, and
 * resolves with its exit code and output, also when the command fails.
 */
export function runBin(argv: string[], timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliBin, ...argv],
      { timeout: timeoutMs, env: { ...process.env, NO_COLOR: '1' } },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
    );
  });
}
