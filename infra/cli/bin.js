#!/usr/bin/env node
// The `edgeloop` executable: runs the TypeScript CLI through tsx, so `npx edgeloop` works
// right after `npm ci` with no build step.
import { register } from 'tsx/esm/api';

// The SDK warns about its own future Node.js floor on every run; the lockfile pins the SDK.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// Handlers log through Powertools to stdout as in Lambda; on a terminal only warnings and errors
// (which go to stderr) are shown unless the user asks for more (POWERTOOLS_LOG_LEVEL=INFO).
process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
register();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv.slice(2));
