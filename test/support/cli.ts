/**
 * Runs the edgeloop CLI in-process (`main(argv)`) and captures what it writes to stdout and
 * stderr, for tests that hold a command's exit code and output.
 */
import { vi } from 'vitest';
import type { Command } from '../../infra/cli/command.ts';
import { main } from '../../infra/cli/main.ts';

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
