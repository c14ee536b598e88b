/** Tiny DOM helpers. Data only ever goes into textContent, never into HTML. */

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children.filter((child) => child !== ''));
  return node;
}

export interface Table {
  wrap: HTMLElement;
  /** Replaces the body with one row per entry; each cell is labelled for the narrow layout. */
  fill(rows: (Node | string)[][]): void;
}

export function table(headings: string[]): Table {
  const body = el('tbody');
  const head = el('thead', {}, el('tr', {}, ...headings.map((h) => el('th', { scope: 'col' }, h))));
  return {
    wrap: el('div', { class: 'table-wrap' }, el('table', {}, head, body)),
    fill(rows) {
      body.replaceChildren(
        ...rows.map((cells) =>
          el('tr', {}, ...cells.map((cell, i) => el('td', { 'data-label': headings[i] ?? '' }, cell))),
        ),
      );
    },
  };
}

export function badge(text: string, kind: string): HTMLElement {
  return el('span', { class: `badge badge--${kind}` }, text);
}
