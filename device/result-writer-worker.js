// Entry of the result writer thread (result-writer.ts): the TypeScript runs through tsx, as
// in the main thread (worker threads do not inherit the main thread's loader).
import { register } from 'tsx/esm/api';

register();
await import('./result-writer-thread.ts');
