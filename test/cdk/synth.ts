/**
 * Synthesizes the CDK app the way `cdk synth` does (buildApp, cdk-nag registered) into a
 * temporary cloud assembly. Each test file calls this once: synthesis takes seconds.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { buildApp } from '../../infra/aws/build-app.ts';
import type { EdgeloopStack } from '../../infra/aws/stack.ts';

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
}

export interface Violation {
  ruleName: string;
  severity?: string;
  violatingConstructs: { constructPath: string }[];
}

export interface Synthesized {
  stack: EdgeloopStack;
  outdir: string;
  template: Template;
  resources: Record<string, CfnResource>;
  /** What app.synth() threw (cdk-nag errors fail synthesis), if anything. */
  synthError: unknown;
  violations: Violation[];
  dispose(): void;
}

export function synthesize(context: Record<string, unknown> = {}): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'edgeloop-cdk-'));
  const { app, stack } = buildApp({ outdir, context });
  let synthError: unknown;
  try {
    app.synth();
  } catch (error) {
    synthError = error;
  }
  const templateFile = join(outdir, stack.templateFile);
  const json = JSON.parse(readFileSync(templateFile, 'utf8')) as { Resources: Record<string, CfnResource> };
  const reportFile = join(outdir, 'validation-report.json');
  const report = existsSync(reportFile)
    ? (JSON.parse(readFileSync(reportFile, 'utf8')) as { pluginReports: { violations: Violation[] }[] })
    : { pluginReports: [] };
  return {
    stack,
    outdir,
    template: Template.fromJSON(json),
    resources: json.Resources,
    synthError,
    violations: report.pluginReports.flatMap((plugin) => plugin.violations),
    dispose: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

/** Resources of one type, as [logicalId, resource] pairs. */
export function resourcesOfType(
  resources: Record<string, CfnResource>,
  type: string,
): [string, CfnResource][] {
  return Object.entries(resources).filter(([, resource]) => resource.Type === type);
}

/** The logical id a `{ Ref }` or `{ Fn::GetAtt }` points at. */
export function referencedId(value: unknown): string | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const node = value as Record<string, unknown>;
  if (typeof node.Ref === 'string') return node.Ref;
  const getAtt = node['Fn::GetAtt'];
  return Array.isArray(getAtt) && typeof getAtt[0] === 'string' ? getAtt[0] : undefined;
}

/** Every IAM policy statement in the template with the logical id of its policy. */
export function policyStatements(
  resources: Record<string, CfnResource>,
): { policy: string; roles: string[]; Action: string[]; Resource: unknown[] }[] {
  return resourcesOfType(resources, 'AWS::IAM::Policy').flatMap(([policy, resource]) => {
    const document = resource.Properties?.PolicyDocument as { Statement: Record<string, unknown>[] };
    const roles = ((resource.Properties?.Roles as unknown[]) ?? []).map((role) => referencedId(role) ?? '');
    return document.Statement.map((statement) => ({
      policy,
      roles,
      Action: [statement.Action].flat() as string[],
      Resource: [statement.Resource].flat(),
    }));
  });
}

/** The logical id of a construct's CloudFormation resource, as the stack allocates it. */
export function logicalId(construct: IConstruct): string {
  const element = (construct.node.defaultChild ?? construct) as CfnElement;
  return Stack.of(construct).getLogicalId(element);
}

/** IoT policy and EventBridge wildcard semantics: `*` matches any run of characters. */
export function wildcardMatches(pattern: string, value: string): boolean {
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*');
  return new RegExp(`^${escaped}$`).test(value);
}
