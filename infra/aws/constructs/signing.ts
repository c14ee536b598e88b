/**
 * The manifest signing key: an asymmetric KMS key whose private half never leaves KMS.
 * Its key policy does not hand signing to IAM: the account (its administrators) may manage
 * the key and read its public half, and `kms:Sign` is granted in the key policy to the
 * signing roles by name (the publish step, the rollout controller) and to no one else, so an
 * IAM policy elsewhere in the account that allows `kms:Sign` on `*` cannot sign manifests or
 * release notices. Devices get the public half at provisioning.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { NAMESPACE } from '../../../shared/topology.ts';

/** Key administration, and reading the public key (edgeloop provision): everything but using it. */
const ACCOUNT_ACTIONS = [
  'kms:Create*',
  'kms:Describe*',
  'kms:Enable*',
  'kms:List*',
  'kms:Put*',
  'kms:Update*',
  'kms:Revoke*',
  'kms:Disable*',
  'kms:Get*',
  'kms:Delete*',
  'kms:TagResource',
  'kms:UntagResource',
  'kms:ScheduleKeyDeletion',
  'kms:CancelKeyDeletion',
];

export class Signing extends Construct {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, stage: string) {
    super(scope, id);
    this.key = new kms.Key(this, 'ManifestSigningKey', {
      description: `${NAMESPACE} ${stage}: signs model manifests and release notices (ECDSA P-256)`,
      keySpec: kms.KeySpec.ECC_NIST_P256,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
      alias: `alias/${NAMESPACE}-${stage}-manifest-signing`,
      removalPolicy: RemovalPolicy.RETAIN,
      policy: new iam.PolicyDocument({
        statements: [
          new iam.PolicyStatement({
            sid: 'AccountManagesAndReadsThePublicKey',
            principals: [new iam.AccountRootPrincipal()],
            actions: ACCOUNT_ACTIONS,
            resources: ['*'],
          }),
        ],
      }),
    });
  }

  /** kms:Sign and nothing else, in the key policy (by role) and the role's own policy. */
  grantSign(grantee: iam.IGrantable): void {
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [grantee.grantPrincipal],
        actions: ['kms:Sign'],
        resources: ['*'],
      }),
    );
    iam.Grant.addToPrincipal({ grantee, actions: ['kms:Sign'], resourceArns: [this.key.keyArn] });
  }
}
