/**
 * The device's S3 client: the local stack's endpoint (path-style, its credentials from the
 * environment), or AWS with credentials from the IoT credentials provider (a role alias and
 * the thing's certificate), or the default chain.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { iotCredentialsProvider } from './iot-credentials.ts';

export interface S3Access {
  thing: string;
  region?: string;
  /** A local S3 endpoint (the local stack's); absent in AWS mode. */
  s3Endpoint?: string;
  credentialsProvider?: { endpoint: string; roleAlias: string };
  tls?: { certFile: string; keyFile: string; caFile?: string };
}

export function deviceS3Client(o: S3Access): S3Client {
  return new S3Client({
    region: o.region ?? process.env.AWS_REGION ?? 'us-east-1',
    ...(o.s3Endpoint
      ? {
          endpoint: o.s3Endpoint,
          forcePathStyle: true,
          credentials: {
            accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? 'S3RVER',
            secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? 'S3RVER',
          },
        }
      : {}),
    ...(o.credentialsProvider && o.tls
      ? { credentials: iotCredentialsProvider({ ...o.credentialsProvider, thing: o.thing, tls: o.tls }) }
      : {}),
  });
}
