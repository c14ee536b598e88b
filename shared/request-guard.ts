/**
 * The guard in front of every HTTP listener on a developer's or a gateway's machine: the
 * local stack's S3, DynamoDB, Kinesis, IoT Publish shim and dashboard, and the gateway's
 * `/infer` and `/status`. They listen on loopback only, yet a web page open in a browser on
 * the same machine can still reach them, in two ways:
 * - a "simple" cross-origin request (a form POST, a text/plain fetch) needs no preflight and
 *   carries `Origin` and `Sec-Fetch-Site`;
 * - DNS rebinding points the page's own host name at 127.0.0.1, so the request is
 *   same-origin for the browser but carries the page's host name in `Host`.
 * The CLI, the SDKs and the gateway send neither `Origin` nor a foreign `Host`, so refusing
 * both costs them nothing. Refused requests get a 403 before the server sees them, and no
 * response of a guarded server carries a CORS grant.
 */
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';

export interface GuardOptions {
  /**
   * The server's own pages may call it (the dashboard loads its script and data): an
   * `Origin` naming the request's own loopback host, and `Sec-Fetch-Site: same-origin`, pass.
   */
  allowSameOrigin?: boolean;
  /** A further check of the request (e.g. the content type an endpoint requires). */
  check?: (request: IncomingMessage) => string | undefined;
  /** Writes the 403 in the server's own error shape (S3's XML); JSON `{error}` by default. */
  refusalBody?: (reason: string) => { contentType: string; body: string };
}

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Whether a Host header names this machine's loopback interface (with or without a port). */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const match = /^(\[[0-9a-f:.]+\]|[^:]+)(?::(\d{1,5}))?$/i.exec(host.trim());
  return match !== null && LOOPBACK_NAMES.has((match[1] ?? '').toLowerCase());
}

/** Why a request must be refused as coming from a web page, or undefined when it may pass. */
export function browserRequestRefusal(
  headers: IncomingHttpHeaders,
  options: Pick<GuardOptions, 'allowSameOrigin'> = {},
): string | undefined {
  const host = headers.host;
  if (!isLoopbackHost(host))
    return `Host '${host ?? ''}' is not a loopback name (127.0.0.1, localhost or [::1]): a page rebound to this address is not served`;
  const origin = headers.origin;
  const site = headers['sec-fetch-site'];
  const ownOrigin = options.allowSameOrigin === true && origin === `http://${host}`;
  if (origin !== undefined && !ownOrigin)
    return `a request with Origin '${origin}' comes from a web page: this listener serves local tools only`;
  const siteAllowed =
    site === undefined || site === 'none' || (options.allowSameOrigin && site === 'same-origin');
  if (!siteAllowed)
    return `a request with Sec-Fetch-Site '${site}' comes from a web page: this listener serves local tools only`;
  return undefined;
}

/**
 * Puts the guard in front of every request listener `server` has now (so it works for servers
 * built by libraries: dynalite, kinesalite; and the local S3's), and keeps CORS grants out of responses.
 */
export function guardServer(server: Server, options: GuardOptions = {}): Server {
  const listeners = server.listeners('request') as ((req: IncomingMessage, res: ServerResponse) => void)[];
  server.removeAllListeners('request');
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const refusal = browserRequestRefusal(request.headers, options) ?? options.check?.(request);
    if (refusal) {
      refuse(request, response, options.refusalBody?.(refusal) ?? jsonError(refusal));
      return;
    }
    withoutCorsGrants(response);
    for (const listener of listeners) listener.call(server, request, response);
  });
  return server;
}

function jsonError(reason: string) {
  return { contentType: 'application/json', body: JSON.stringify({ error: reason }) };
}

function refuse(
  request: IncomingMessage,
  response: ServerResponse,
  { contentType, body }: { contentType: string; body: string },
) {
  // The body is not read: close the connection rather than parse what a page sent.
  response.writeHead(403, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  response.end(body);
  request.resume();
}

/** dynalite and kinesalite grant `Access-Control-Allow-Origin: *`; a guarded server grants nothing. */
function withoutCorsGrants(response: ServerResponse) {
  const setHeader = response.setHeader.bind(response);
  response.setHeader = (name, value) =>
    name.toLowerCase().startsWith('access-control-') ? response : setHeader(name, value);
}
