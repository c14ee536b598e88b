import { describe, expect, it } from 'vitest';
import { runCli } from '../../bench/support/cli.ts';
import { defineCommand } from '../../shared/cli/command.ts';

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

describe('the CLI frame', () => {
  it('runs a command with its options', async () => {
    const { code, stdout } = await runCli(['echo', 'hi', '--times', '2'], [echo]);
    expect(code).toBe(0);
    expect(stdout).toBe('hi\nhi\n');
  });

  it('answers bad usage with exit code 2 and a one-line reason', async () => {
    for (const argv of [['echo', 'hi', '--bogus'], ['echo'], ['echo', 'a', 'b'], ['nope']]) {
      const { code, stderr } = await runCli(argv, [echo]);
      expect(code).toBe(2);
      expect(stderr.trim().split('\n')).toHaveLength(1);
    }
  });

  it('shows help with an example', async () => {
    const { code, stdout } = await runCli(['echo', '--help'], [echo]);
    expect(code).toBe(0);
    expect(stdout).toContain('edgeloop echo hi --times 2');
  });
});
