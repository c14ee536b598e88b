/**
 * cdk-nag: the app as `cdk synth` builds it (AwsSolutions registered) synthesizes with no
 * unacknowledged findings, and every acknowledgement carries a written reason.
 */
import { Validations } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acknowledge, MIN_REASON_LENGTH } from '../../infra/aws/nag.ts';
import { type Synthesized, synthesize } from './synth.ts';

let synth: Synthesized;

beforeAll(() => {
  synth = synthesize();
});
afterAll(() => synth.dispose());

function acknowledgements(): { path: string; id: string; reason: string }[] {
  return synth.stack.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, string>).map(([id, reason]) => ({
          path: construct.node.path,
          id,
          reason,
        })),
      ),
  );
}

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged errors or warnings', () => {
    expect(
      synth.violations.map((v) => `${v.ruleName} at ${v.violatingConstructs[0]?.constructPath}`),
    ).toEqual([]);
    expect(synth.synthError).toBeUndefined();
  });

  it('acknowledges only AwsSolutions rules, each with a written reason', () => {
    const all = acknowledgements();
    expect(all.length).toBeGreaterThan(0);
    for (const { id, reason } of all) {
      expect(id).toMatch(/AwsSolutions-[A-Z]+\d+/);
      expect(reason.trim().length).toBeGreaterThanOrEqual(MIN_REASON_LENGTH);
    }
  });

  it('refuses an acknowledgement without a reason', () => {
    expect(() => acknowledge(synth.stack, 'AwsSolutions-S1', 'because')).toThrow(/needs a written reason/);
  });
});
