/**
 * AWS mode: temporary S3 credentials from the AWS IoT credentials provider. The gateway
 * presents its thing certificate (mTLS) to `https://<credentials endpoint>/role-aliases/
 * <alias>/credentials`; the role behind the alias is read-only on the models bucket.
 * Credentials are cached until five minutes before they expire.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

interface AwsCredentialIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

interface ProviderOptions {
  endpoint: string;
  roleAlias: string;
  thing: string;
  tls: { certFile: string; keyFile: string; caFile?: string };
}

export function iotCredentialsProvider(options: ProviderOptions): () => Promise<AwsCredentialIdentity> {
  let cached: AwsCredentialIdentity | undefined;
  return async () => {
    const expiresAt = cached?.expiration?.getTime() ?? 0;
    if (cached && expiresAt - Date.now() > 5 * 60_000) return cached;
    cached = await fetchCredentials(options);
    return cached;
  };
}

function fetchCredentials(options: ProviderOptions): Promise<AwsCredentialIdentity> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        // `host` in AWS; `host:port` is accepted for a stand-in.
        host: options.endpoint.split(':')[0],
        port: Number(options.endpoint.split(':')[1] ?? 443),
        path: `/role-aliases/${encodeURIComponent(options.roleAlias)}/credentials`,
        method: 'GET',
        cert: readFileSync(options.tls.certFile),
        key: readFileSync(options.tls.keyFile),
        ...(options.tls.caFile ? { ca: readFileSync(options.tls.caFile) } : {}),
        headers: { 'x-amzn-iot-thingname': options.thing },
        timeout: 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            reject(new Error(`IoT credentials provider answered ${res.statusCode}: ${text.slice(0, 200)}`));
            return;
          }
          try {
            const { credentials } = JSON.parse(text) as {
              credentials: {
                accessKeyId: string;
                secretAccessKey: string;
                sessionToken: string;
                expiration: string;
              };
            };
            resolve({
              accessKeyId: credentials.accessKeyId,
              secretAccessKey: credentials.secretAccessKey,
              sessionToken: credentials.sessionToken,
              expiration: new Date(credentials.expiration),
            });
          } catch (error) {
            reject(new Error(`IoT credentials provider answer is not usable: ${(error as Error).message}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('IoT credentials provider timed out')));
    req.on('error', reject);
    req.end();
  });
}
