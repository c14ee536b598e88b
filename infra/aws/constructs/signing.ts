/**
 * The manifest signing key: an asymmetric KMS key whose private half never leaves KMS.
 * The publish step may only sign with it; devices get the public half at provisioning.
 */
import { RemovalPolicy } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { NAMESPACE } from '../../../shared/topology.ts';

export class Signing extends Construct {
  readonly key: kms.Key;

  constructor(scope: Construct, id: string, stage: string) {
    super(scope, id);
    this.key = new kms.Key(this, 'ManifestSigningKey', {
      description: `${NAMESPACE} ${stage}: signs model manifests (ECDSA P-256)`,
      keySpec: kms.KeySpec.ECC_NIST_P256,
      keyUsage: kms.KeyUsage.SIGN_VERIFY,
      alias: `alias/${NAMESPACE}-${stage}-manifest-signing`,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }

  /** kms:Sign and nothing else: devices get the public key at provisioning, not from here. */
  grantSign(grantee: iam.IGrantable): void {
    this.key.grant(grantee, 'kms:Sign');
  }
}
