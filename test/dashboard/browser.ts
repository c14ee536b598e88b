/**
 * Opens the dashboard in Debian's chromium through playwright-core. Reusable by any test that
 * has a dashboard URL (the end-to-end demo test opens the page on the demo's real data).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Whether the browser tests can run here; when not, say why in one line. */
export function chromiumMissingReason(): string | undefined {
  return existsSync(CHROMIUM_PATH)
    ? undefined
    : `${CHROMIUM_PATH} is missing: the dashboard browser test is skipped (install it with \`apt-get install -y chromium\`; CI does this in .ci/run)`;
}

export interface OpenOptions {
  viewport?: { width: number; height: number };
  /** Poll period handed to the page (`?interval=`), default 250 ms to keep tests quick. */
  intervalMs?: number;
}

export interface OpenDashboard {
  page: Page;
  /** Console errors and uncaught page errors seen so far. */
  errors: string[];
  /** Requests the page tried to make to any host other than the dashboard's (blocked). */
  foreignRequests: string[];
  /** Resolves once the page has rendered at least `generation` snapshots. */
  waitForRender(generation?: number): Promise<number>;
  close(): Promise<void>;
}

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function openDashboard(url: string, options: OpenOptions = {}): Promise<OpenDashboard> {
  const userDataDir = await mkdtemp(join(tmpdir(), 'edgeloop-chromium-'));
  let context: BrowserContext | undefined;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: options.viewport ?? { width: 1280, height: 800 },
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const errors: string[] = [];
    const foreignRequests: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(error.message));

    // The page must work offline: anything not served by the dashboard itself is refused.
    const origin = new URL(url).origin;
    await page.route('**/*', (route) => {
      const target = route.request().url();
      if (target.startsWith(origin) || target.startsWith('data:')) return route.continue();
      foreignRequests.push(target);
      return route.abort('blockedbyclient');
    });

    const address = new URL(url);
    address.searchParams.set('interval', String(options.intervalMs ?? 250));
    await page.goto(address.toString(), { waitUntil: 'load' });

    const opened = context;
    return {
      page,
      errors,
      foreignRequests,
      async waitForRender(generation = 1) {
        await page.waitForFunction((n) => Number(document.body.dataset.generation ?? 0) >= n, generation, {
          timeout: 15_000,
        });
        return page.evaluate(() => Number(document.body.dataset.generation));
      },
      async close() {
        await opened.close();
        await rm(userDataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await context?.close();
    await rm(userDataDir, { recursive: true, force: true });
    throw error;
  }
}
