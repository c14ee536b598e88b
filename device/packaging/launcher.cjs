#!/usr/bin/env node
// bin/edgeloop-device: the packaged edgeloop gateway service (see device/README.md).
// Checks the platform, points aws-crt at the native binary shipped next to the bundle, then
// runs lib/edgeloop-device.mjs with the same flags, env vars and config file as `edgeloop device`.
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

const root = join(__dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const fail = (message) => {
  process.stderr.write(`edgeloop-device: ${message}\n`);
  process.exit(1);
};
const [major = 0] = process.versions.node.split('.').map(Number);
if (major < pkg.edgeloop.nodeMajorMin)
  fail(`needs Node.js >= ${pkg.edgeloop.nodeMajorMin}, this is ${process.version} (${process.execPath})`);
if (process.platform !== pkg.edgeloop.platform || process.arch !== pkg.edgeloop.arch)
  fail(
    `this is the ${pkg.edgeloop.platform}-${pkg.edgeloop.arch} package, but this machine is ${process.platform}-${process.arch}; install edgeloop-device-${pkg.version}-${process.platform}-${process.arch}.tar.gz`,
  );

process.env.AWS_CRT_NODEJS_BINARY_ABSOLUTE_PATH = join(root, 'lib', 'aws-crt-nodejs.node');
// The SDK warns about its own future Node.js floor on every run; the package pins the SDK.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
import(pathToFileURL(join(root, 'lib', 'edgeloop-device.mjs')).href).catch((error) =>
  fail(`cannot start: ${error?.stack ?? error}`),
);
