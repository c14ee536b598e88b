/**
 * The datasets and models buckets and the bucket their server access logs go to. All three
 * are encrypted, SSL-only, private and versioned where the data matters; lifecycle rules
 * expire what nothing reads any more.
 */
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { buckets } from '../../../shared/topology.ts';
import type { EdgeloopConfig } from '../config.ts';
import { acknowledge } from '../nag.ts';

const ABORT_MULTIPART_DAYS = 7;

const securedBucket = {
  encryption: s3.BucketEncryption.S3_MANAGED,
  enforceSSL: true,
  blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
  objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
  removalPolicy: RemovalPolicy.RETAIN,
} as const;

export class Storage extends Construct {
  readonly accessLogs: s3.Bucket;
  readonly datasets: s3.Bucket;
  readonly models: s3.Bucket;

  constructor(scope: Construct, id: string, config: EdgeloopConfig) {
    super(scope, id);
    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      ...securedBucket,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(config.accessLogDays) }],
    });
    acknowledge(
      this.accessLogs,
      'AwsSolutions-S1',
      'This is the access-log target itself; logging it into itself would loop, and no other bucket exists for it.',
    );

    const keepCurrent: s3.LifecycleRule = {
      id: 'expire-noncurrent-versions',
      noncurrentVersionExpiration: Duration.days(config.noncurrentVersionDays),
      abortIncompleteMultipartUploadAfter: Duration.days(ABORT_MULTIPART_DAYS),
    };

    this.datasets = new s3.Bucket(this, buckets.datasets.id, {
      ...securedBucket,
      versioned: true,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: `${buckets.datasets.id.toLowerCase()}/`,
      lifecycleRules: [
        keepCurrent,
        {
          id: 'old-datasets-to-infrequent-access',
          transitions: [
            {
              storageClass: s3.StorageClass.INFREQUENT_ACCESS,
              transitionAfter: Duration.days(config.datasetsInfrequentAccessDays),
            },
          ],
        },
      ],
    });
    // EventBridge delivery set on the bucket itself: `eventBridgeEnabled: true` would add a
    // custom-resource Lambda just to flip this switch.
    (this.datasets.node.defaultChild as s3.CfnBucket).addPropertyOverride(
      'NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled',
      true,
    );

    this.models = new s3.Bucket(this, buckets.models.id, {
      ...securedBucket,
      versioned: true,
      serverAccessLogsBucket: this.accessLogs,
      serverAccessLogsPrefix: `${buckets.models.id.toLowerCase()}/`,
      // Released versions stay: the registry points at them and rollbacks need them.
      lifecycleRules: [keepCurrent],
    });
  }
}
