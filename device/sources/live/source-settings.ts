/**
 * What every live source's settings go through: its zod schema, with errors that name the
 * field, what is wrong and an example; and its quick `--source URL` form, read against the
 * query parameters the source knows.
 */
import type { z } from 'zod';
import { EdgeloopError } from '../../../shared/errors.ts';
import { describeZodError } from '../../../shared/schemas.ts';

/** `input` checked by `schema`, or an EdgeloopError: `where: field: fault; for example EXAMPLE`. */
export function parseSourceSettings<T extends z.ZodType>(
  schema: T,
  input: unknown,
  where: string,
  example: string,
): z.output<T> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new EdgeloopError(`${where}: ${describeZodError(parsed.error)}; for example ${example}`);
}

/** The URL as an error message may show it: user and password left out. */
export function withoutCredentials(text: string): string {
  return text.replace(/\/\/[^@/]*@/, '//…@');
}

export interface SourceUrl {
  url: URL;
  query: URLSearchParams;
  /** Settings fields from the plain parameters (those given a field), numbers converted. */
  fields: Record<string, unknown>;
  /** Throws the URL's error: what is wrong, and the example. */
  fail(what: string): never;
}

export interface SourceUrlForm {
  /** `modbus:`, `opc.tcp:`: URL.protocol, with its colon. */
  protocol: string;
  example: string;
  /** Every parameter the form knows; a plain one names its settings field and type. */
  params: Record<string, { field: string; type: 'number' | 'string' } | 'own'>;
}

/** A `--source` URL taken apart: the scheme and every parameter checked, plain ones mapped. */
export function readSourceUrl(text: string, form: SourceUrlForm): SourceUrl {
  const shown = withoutCredentials(text);
  const fail = (what: string): never => {
    throw new EdgeloopError(`bad source URL '${shown}': ${what}; for example ${form.example}`);
  };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail('not a URL');
  }
  if (url.protocol !== form.protocol) fail(`the scheme must be ${form.protocol}//`);
  const fields: Record<string, unknown> = {};
  for (const [key, value] of url.searchParams) {
    const param = form.params[key];
    if (param === undefined) fail(`unknown parameter '${key}'`);
    else if (param !== 'own') fields[param.field] = param.type === 'number' ? Number(value) : value;
  }
  return { url, query: url.searchParams, fields, fail };
}
