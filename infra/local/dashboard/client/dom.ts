/** Tiny DOM helpers. Data only ever goes into textContent, never into HTML. */

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** Replaces a table body with one row per entry. */
export function fillRows(tbody: HTMLTableSectionElement, rows: (Node | string)[][]): void {
  tbody.replaceChildren(...rows.map((cells) => el('tr', {}, ...cells.map((cell) => el('td', {}, cell)))));
}

export function table(headings: string[]): { wrap: HTMLElement; body: HTMLTableSectionElement } {
  const body = el('tbody');
  const head = el('thead', {}, el('tr', {}, ...headings.map((h) => el('th', { scope: 'col' }, h))));
  return { wrap: el('div', { class: 'table-wrap' }, el('table', {}, head, body)), body };
}

export function badge(text: string, kind: string): HTMLElement {
  return el('span', { class: `badge badge--${kind}` }, text);
}
