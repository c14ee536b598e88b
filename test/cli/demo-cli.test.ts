/**
 * `edgeloop demo` as a user runs it, in a child process whose stderr is not a terminal:
 * a plain line per phase and per progress step, a summary table on stdout, and a failure
 * that ends with one line saying what went wrong.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBin } from '../../bench/support/cli.ts';

const demo = (args: string[]) => runBin(['demo', ...args]);

describe('edgeloop demo on a pipe', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-demo-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('shows each phase and step as plain lines and ends with the summary table', async () => {
    // Act
    const { code, stdout, stderr } = await demo(['--devices', '2', '--readings', '50']);

    // Assess
    expect(code).toBe(0);
    const steps = stderr.split('\n').filter((line) => /^(upload|train|rollout): /.test(line));
    expect(steps).toEqual([
      expect.stringMatching(/^upload: (\d+\.\d KiB) \/ \1$/),
      expect.stringMatching(/^train: v1 released after \d+\.\d s, test accuracy \d+\.\d%$/),
      expect.stringMatching(/^rollout: 2\/2 gateways on v1 in \d+\.\d s$/),
    ]);
    expect(stderr).toMatch(/^\[stack {2}\] dashboard at http:\/\/127\.0\.0\.1:\d+\/$/m);
    expect(stdout.split('\n')[0]).toBe('edgeloop demo: the loop closed');
    expect(stdout).toMatch(/^results {4}published 100, aggregated 100$/m);
    expect(stdout).not.toContain('\u001b[');
  });

  it('prints nothing but the summary with --quiet', async () => {
    // Act
    const { code, stdout, stderr } = await demo(['--devices', '1', '--readings', '20', '--quiet']);

    // Assess
    expect(code).toBe(0);
    expect(stderr.split('\n').filter((line) => line && !line.startsWith('{'))).toEqual([]);
    expect(stdout).toMatch(/^results {4}published 20, aggregated 20$/m);
  });

  it('exits 1 with the rejection reason when the dataset cannot train a model', async () => {
    // Prepare
    const csv = join(dir, 'one-class.csv');
    writeFileSync(csv, 'a,b,label\n1,2,x\n3,4,x\n');

    // Act
    const { code, stdout, stderr } = await demo(['--devices', '1', '--dataset', csv, '--json']);

    // Assess
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr.trimEnd().split('\n').at(-1)).toMatch(
      /^edgeloop demo: the training run ended 'rejected': .*has only one class/,
    );
  });
});
