/**
 * AWS SDK v3 clients, created once per process. In AWS they use the default chain; against
 * the embedded local stack the standard `AWS_ENDPOINT_URL_<SERVICE>` variables point them at
 * the local servers (set by infra/local), so handler code is identical in both places.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { IoTDataPlaneClient } from '@aws-sdk/client-iot-data-plane';
import { S3Client } from '@aws-sdk/client-s3';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

let s3: S3Client | undefined;
let ddb: DynamoDBDocumentClient | undefined;
let iotData: IoTDataPlaneClient | undefined;

export function s3Client(): S3Client {
  // The local S3 (like most S3 stand-ins) serves path-style addressing only.
  s3 ??= new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3) });
  return s3;
}

export function dynamoClient(): DynamoDBDocumentClient {
  ddb ??= DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  });
  return ddb;
}

export function iotDataClient(): IoTDataPlaneClient {
  iotData ??= new IoTDataPlaneClient({});
  return iotData;
}

/** Drops cached clients (tests and the local stack call this after changing endpoints). */
export function resetAwsClients(): void {
  s3?.destroy();
  ddb?.destroy();
  iotData?.destroy();
  s3 = undefined;
  ddb = undefined;
  iotData = undefined;
}
