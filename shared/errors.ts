/** Errors that carry a message meant for the user: what is wrong, where, and how to fix it. */
export class EdgeloopError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'EdgeloopError';
  }
}

/** Input that will never succeed as it is (bad dataset, bad flag): not worth a retry. */
export class InputError extends EdgeloopError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'InputError';
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
