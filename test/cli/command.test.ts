import { describe, expect, it, vi } from 'vitest';
import { defineCommand } from '../../infra/cli/command.ts';
import { main } from '../../infra/cli/main.ts';

const echo = defineCommand({
  name: 'echo',
  summary: 'prints its argument',
  usage: 'edgeloop echo WORD [--times N]',
  examples: ['edgeloop echo hi --times 2'],
  options: { times: { type: 'string', description: 'how often', default: '1' } },
  positionals: [1, 1],
  async run({ values, positionals, out }) {
    for (let i = 0; i < Number(values.times); i++) out(positionals[0] ?? '');
    return 0;
  },
});

function capture() {
  const stdout: string[] = [];
  const stderr: string[] = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout.push(String(chunk));
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr.push(String(chunk));
    return true;
  });
  return { stdout, stderr, restore: () => vi.restoreAllMocks() };
}

describe('the CLI frame', () => {
  it('runs a command with its options', async () => {
    const io = capture();
    const code = await main(['echo', 'hi', '--times', '2'], [echo]);
    io.restore();
    expect(code).toBe(0);
    expect(io.stdout.join('')).toBe('hi\nhi\n');
  });

  it('answers bad usage with exit code 2 and a one-line reason', async () => {
    for (const argv of [['echo', 'hi', '--bogus'], ['echo'], ['echo', 'a', 'b'], ['nope']]) {
      const io = capture();
      const code = await main(argv, [echo]);
      io.restore();
      expect(code).toBe(2);
      expect(io.stderr.join('').trim().split('\n')).toHaveLength(1);
    }
  });

  it('shows help with an example', async () => {
    const io = capture();
    const code = await main(['echo', '--help'], [echo]);
    io.restore();
    expect(code).toBe(0);
    expect(io.stdout.join('')).toContain('edgeloop echo hi --times 2');
  });
});
