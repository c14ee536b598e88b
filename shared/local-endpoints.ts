/**
 * The local stack's endpoints file (`localStackFiles.endpoints` in its data dir): written by
 * `edgeloop up`, read by the CLI, the local stack on restart (to reuse its ports) and the
 * device. One schema for all of them; a reader that needs less picks its fields.
 */
import { z } from 'zod';

const LoopbackHttp = z.string().regex(/^http:\/\/127\.0\.0\.1:\d+$/);

export const LocalEndpointsSchema = z.object({
  s3: LoopbackHttp,
  mqtt: z.string().regex(/^mqtt:\/\/127\.0\.0\.1:\d+$/),
  dynamodb: LoopbackHttp,
  iotData: LoopbackHttp,
  kinesis: LoopbackHttp,
  dashboard: z.string().optional(),
});
export type LocalEndpoints = z.infer<typeof LocalEndpointsSchema>;
