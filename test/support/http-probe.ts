/**
 * Raw HTTP requests as a browser or a DNS-rebinding page would send them: node:http lets a
 * test set `Host`, `Origin` and `Sec-Fetch-Site` freely (fetch forbids some of them).
 */
import { request } from 'node:http';

export interface Probe {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface ProbeAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function probe(endpoint: string, options: Probe = {}): Promise<ProbeAnswer> {
  const url = new URL(options.path ?? '/', endpoint);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        headers: {
          ...(options.body !== undefined ? { 'content-length': Buffer.byteLength(options.body) } : {}),
          ...options.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A multipart/form-data body as an HTML form POST sends it (S3's browser-upload shape). */
export function formPost(fields: Record<string, string>): { body: string; contentType: string } {
  const boundary = '----edgeloopprobe';
  const parts = Object.entries(fields).map(
    ([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
  );
  return {
    body: `${parts.join('')}--${boundary}--\r\n`,
    contentType: `multipart/form-data; boundary=${boundary}`,
  };
}

/** Headers a page on another site sends with a simple cross-origin request. */
export const FROM_PAGE = { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' } as const;

/** How an SDK call ended, as one string: `ok` when it succeeded, else the error's name (and message). */
export function outcome(
  call: Promise<unknown>,
  ok: string,
  withMessage = false,
): Promise<string | undefined> {
  return call.then(
    () => ok,
    (error: { name?: string; message?: string }) =>
      withMessage ? `${error.name}: ${error.message}` : error.name,
  );
}
