/**
 * The synthesized templates against AWS's resource specifications: cfn-lint (from PyPI, on
 * these machines) finds no error in the default stage nor in a stage with every option on,
 * and every warning is either fixed or accepted, with its reason, in
 * infra/aws/cfn-lint-accepted.json.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { peerAvailable } from '../support/peers.ts';
import { synthesize } from './synth.ts';

/** cfn-lint on PATH, or where pyenv keeps it when a non-login shell left its shims off PATH. */
const cfnLint = [
  'cfn-lint',
  ...(process.env.PYENV_ROOT ? [join(process.env.PYENV_ROOT, 'shims', 'cfn-lint')] : []),
  join(homedir(), '.pyenv', 'shims', 'cfn-lint'),
].find((command) => spawnSync(command, ['--version'], { encoding: 'utf8' }).status === 0);
const available = peerAvailable(
  'cfn-lint',
  cfnLint ? undefined : '`cfn-lint` is missing',
  'pip install cfn-lint',
);

const accepted = new Set(
  (
    JSON.parse(readFileSync(join(import.meta.dirname, '../../infra/aws/cfn-lint-accepted.json'), 'utf8')) as {
      accepted: { rule: string; reason: string }[];
    }
  ).accepted.map((entry) => entry.rule),
);

interface Match {
  Level: 'Error' | 'Warning' | 'Informational';
  Rule: { Id: string };
  Message: string;
}

const stages: [string, Record<string, unknown>][] = [
  ['the default stage', { 'edgeloop:stage': 'dev' }],
  [
    'a stage with every option on',
    {
      'edgeloop:stage': 'prod',
      'edgeloop:resultsStreamShards': 4,
      'edgeloop:alarmEmail': 'ops@example.com',
    },
  ],
];

describe.runIf(available)('cfn-lint on the synthesized templates', () => {
  it.each(stages)(
    'finds no error and no unaccepted warning in %s',
    (_, context) => {
      // Prepare
      const synth = synthesize(context);
      const template = join(synth.outdir, synth.stack.templateFile);

      // Act: cfn-lint exits non-zero whenever it finds something; its JSON says what.
      const run = spawnSync(cfnLint as string, ['--format', 'json', template], { encoding: 'utf8' });
      synth.dispose();

      // Assess
      expect(run.stdout.trim().startsWith('['), `cfn-lint did not answer JSON: ${run.stderr}`).toBe(true);
      const matches = JSON.parse(run.stdout) as Match[];
      const text = (m: Match) => `${m.Level} ${m.Rule.Id}: ${m.Message}`;
      expect(matches.filter((m) => m.Level === 'Error').map(text)).toEqual([]);
      expect(matches.filter((m) => !accepted.has(m.Rule.Id)).map(text)).toEqual([]);
    },
    240_000,
  );
});
