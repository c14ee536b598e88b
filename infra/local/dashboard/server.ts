/**
 * The local dashboard server: node:http, no framework. It serves the page, its stylesheet,
 * the client bundle (TypeScript + Chart.js bundled by esbuild at first start, from local
 * node_modules: the page works offline) and `/api/snapshot`, which is validated against
 * DashboardSnapshotSchema before it leaves the process.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { EdgeloopError, errorMessage } from '../../../shared/errors.ts';
import { guardServer } from '../../../shared/request-guard.ts';
import { describeZodError } from '../../../shared/schemas.ts';
import { type DashboardSnapshot, DashboardSnapshotSchema } from './snapshot.ts';

export interface DashboardOptions {
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: '127.0.0.1';
  /**
   * Reads the current data. Called for `/api/snapshot`; requests that arrive while a read is
   * in flight share it, so several open tabs do not multiply the load on the tables.
   */
  snapshot: () => Promise<DashboardSnapshot>;
}

export interface DashboardServer {
  url: string;
  close(): Promise<void>;
}

export const SNAPSHOT_PATH = '/api/snapshot';

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

interface Asset {
  body: Buffer;
  type: string;
}

let assetsPromise: Promise<Map<string, Asset>> | undefined;

/** Bundles the client once per process; later servers reuse the result. */
function loadAssets(): Promise<Map<string, Asset>> {
  assetsPromise ??= (async () => {
    const [html, css, bundle] = await Promise.all([
      readFile(here('./static/index.html')),
      readFile(here('./static/styles.css')),
      build({
        entryPoints: [here('./client/main.ts')],
        bundle: true,
        write: false,
        format: 'esm',
        platform: 'browser',
        target: 'es2022',
        minify: true,
        legalComments: 'none',
        logLevel: 'silent',
      }),
    ]);
    const js = bundle.outputFiles[0];
    if (!js) throw new Error('esbuild produced no output for the dashboard client');
    return new Map<string, Asset>([
      ['/', { body: html, type: 'text/html; charset=utf-8' }],
      ['/index.html', { body: html, type: 'text/html; charset=utf-8' }],
      ['/styles.css', { body: css, type: 'text/css; charset=utf-8' }],
      ['/app.js', { body: Buffer.from(js.contents), type: 'text/javascript; charset=utf-8' }],
    ]);
  })();
  assetsPromise.catch(() => {
    assetsPromise = undefined;
  });
  return assetsPromise;
}

const securityHeaders = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

function send(res: ServerResponse, status: number, type: string, body: string | Buffer, head: boolean) {
  res.writeHead(status, {
    ...securityHeaders,
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, head: boolean) {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), head);
}

async function serveSnapshot(res: ServerResponse, snapshot: DashboardOptions['snapshot'], head: boolean) {
  let value: unknown;
  try {
    value = await snapshot();
  } catch (error) {
    sendJson(res, 503, { error: `could not read the dashboard data: ${errorMessage(error)}` }, head);
    return;
  }
  const parsed = DashboardSnapshotSchema.safeParse(value);
  if (!parsed.success) {
    sendJson(
      res,
      500,
      { error: `the dashboard data does not match its schema: ${describeZodError(parsed.error)}` },
      head,
    );
    return;
  }
  sendJson(res, 200, parsed.data, head);
}

/** Wraps an async read so that calls made while one is in flight share its result. */
export function shareInflight<T>(read: () => Promise<T>): () => Promise<T> {
  let inflight: Promise<T> | undefined;
  return () => {
    inflight ??= read().finally(() => {
      inflight = undefined;
    });
    return inflight;
  };
}

export async function startDashboard(options: DashboardOptions): Promise<DashboardServer> {
  const assets = await loadAssets();
  const host = options.host ?? '127.0.0.1';
  const readSnapshot = shareInflight(options.snapshot);

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.setHeader('allow', 'GET, HEAD');
      sendJson(res, 405, { error: `${req.method} is not supported; use GET` }, false);
      return;
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path === SNAPSHOT_PATH) {
      await serveSnapshot(res, readSnapshot, head);
      return;
    }
    const asset = assets.get(path);
    if (asset) {
      send(res, 200, asset.type, asset.body, head);
      return;
    }
    sendJson(res, 404, { error: `no such page: ${path}` }, head);
  };

  // Its own page may call it; no other page may, nor a page rebound to 127.0.0.1 (Host).
  const server = guardServer(
    createServer((req, res) => {
      handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error: errorMessage(error) }, false);
        else res.destroy();
      });
    }),
    { allowSameOrigin: true },
  );
  server.keepAliveTimeout = 5_000;

  const wanted = options.port ?? 0;
  await new Promise<void>((resolve, reject) => {
    const fail = (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new EdgeloopError(
              `the dashboard cannot listen on ${host}:${wanted}: the port is in use; choose another port or 0 for any free one`,
              { cause: error },
            )
          : error,
      );
    server.once('error', fail);
    server.listen(wanted, host, () => {
      server.off('error', fail);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${port}/`,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        // Browsers hold keep-alive connections open; close() alone would wait for them.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
