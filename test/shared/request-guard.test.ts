import { describe, expect, it } from 'vitest';
import { browserRequestRefusal, isLoopbackHost } from '../../shared/request-guard.ts';

describe('which requests come from a web page', () => {
  it.each([
    ['127.0.0.1:4566', true],
    ['localhost', true],
    ['LOCALHOST:80', true],
    ['[::1]:9000', true],
    ['127.0.0.1.evil.example', false],
    ['localhost.evil.example:80', false],
    ['evil.example', false],
    ['127.0.0.2', false],
    ['', false],
    [undefined, false],
  ])('Host %s is loopback: %s', (host, loopback) => {
    expect(isLoopbackHost(host)).toBe(loopback);
  });

  it('lets a CLI or SDK request through and refuses any Origin or foreign Sec-Fetch-Site', () => {
    const host = '127.0.0.1:4566';
    expect(browserRequestRefusal({ host })).toBeUndefined();
    expect(browserRequestRefusal({ host, 'sec-fetch-site': 'none' })).toBeUndefined();
    expect(browserRequestRefusal({ host, origin: 'http://evil.example' })).toMatch(
      /Origin 'http:\/\/evil.example'/,
    );
    expect(browserRequestRefusal({ host, origin: `http://${host}` })).toMatch(/Origin/);
    expect(browserRequestRefusal({ host, 'sec-fetch-site': 'same-origin' })).toMatch(
      /Sec-Fetch-Site 'same-origin'/,
    );
  });

  it("lets a server's own page call it when asked, and nothing else", () => {
    const host = '127.0.0.1:8080';
    const own = { allowSameOrigin: true };
    expect(
      browserRequestRefusal({ host, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' }, own),
    ).toBeUndefined();
    expect(browserRequestRefusal({ host, origin: 'http://127.0.0.1:9999' }, own)).toMatch(/Origin/);
    expect(browserRequestRefusal({ host, 'sec-fetch-site': 'same-site' }, own)).toMatch(/Sec-Fetch-Site/);
    expect(
      browserRequestRefusal({ host: 'evil.example:8080', origin: 'http://evil.example:8080' }, own),
    ).toMatch(/not a loopback name/);
  });
});
