/**
 * The local S3 server alone in a process, for a test that kills it mid-upload: serves
 * `<root>` (argv[2]) with bucket argv[3] on a free loopback port, printed on stdout. No
 * guard and no SigV4 check: only the crash test's own requests reach it.
 */
import { createServer } from 'node:http';
import { LocalS3 } from '../../infra/local/s3/server.ts';

const [root, bucket] = process.argv.slice(2);
if (!root || !bucket) throw new Error('usage: s3-server-process.ts <root> <bucket>');
const s3 = await LocalS3.open({ directory: root, buckets: [bucket], region: 'us-east-1' });
const server = createServer(s3.handle);
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
});
