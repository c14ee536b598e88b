/**
 * cdk-nag acknowledgements. Every one goes through `acknowledge`, which insists on a written
 * reason, so test/cdk/stack.test.ts can hold the whole list against that rule.
 */
import { Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

export const MIN_REASON_LENGTH = 30;

export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  if (reason.trim().length < MIN_REASON_LENGTH) {
    throw new Error(`cdk-nag acknowledgement ${id} at ${scope.node.path} needs a written reason`);
  }
  Validations.of(scope).acknowledge({ id, reason });
}

/** A resolved CloudFormation value written the way cdk-nag names it in a finding id. */
export function renderCfnValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object') {
    const node = value as Record<string, unknown>;
    if (typeof node.Ref === 'string') return `<${node.Ref}>`;
    const getAtt = node['Fn::GetAtt'];
    if (Array.isArray(getAtt)) return `<${getAtt.join('.')}>`;
    const join = node['Fn::Join'];
    if (Array.isArray(join)) {
      const [separator, parts] = join as [string, unknown[]];
      return parts.map(renderCfnValue).join(separator);
    }
  }
  throw new Error(`cannot name ${JSON.stringify(value)} in a cdk-nag finding`);
}

/** The AwsSolutions-IAM5 finding id for a wildcard resource (an ARN string or token). */
export function wildcardFinding(scope: IConstruct, resourceArn: string): string {
  return `AwsSolutions-IAM5[Resource::${renderCfnValue(Stack.of(scope).resolve(resourceArn))}]`;
}
