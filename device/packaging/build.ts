/**
 * `npm run package:device`: the gateway service as a small, self-contained archive per
 * architecture, dist/edgeloop-device-<version>-linux-<arch>.tar.gz, with dist/SHA256SUMS.
 *
 *     edgeloop-device/
 *       bin/edgeloop-device          node launcher (launcher.cjs): platform check, then the bundle
 *       lib/edgeloop-device.mjs      the device code and its npm dependencies, one esbuild bundle
 *       lib/tfjs-backend-wasm*.wasm  the WebAssembly kernels TensorFlow.js loads next to it
 *       lib/aws-crt-nodejs.node      aws-crt's native binary for this architecture (glibc) only
 *       lib/THIRD-PARTY-LICENSES.txt licence comments of the bundled packages, aws-crt's NOTICE
 *       packaging/                   systemd unit and example config;  package.json, README.md
 *
 * No tsx, TypeScript, CDK or local-stack code is inside: the entry is the `device` command on
 * its own (edgeloop-device.ts). aws-crt cannot be bundled with its binary (awslabs/aws-crt-nodejs#467),
 * so its JavaScript is bundled and the launcher points it at the binary through its documented
 * AWS_CRT_NODEJS_BINARY_ABSOLUTE_PATH. The device has no worker thread and bundles
 * nothing at run time.
 *
 * Reproducible: entries in sorted order, fixed mtime (SOURCE_DATE_EPOCH, else 2000-01-01),
 * owner 0:0 without names, modes 0755/0644, and gzip without a timestamp. The same commit
 * built with the same Node.js (its zlib) gives the same bytes.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { type BuildOptions, build, type Plugin } from 'esbuild';
import { pack } from 'tar-stream';

export const TARGET_ARCHES = ['x64', 'arm64'] as const;
export type Arch = (typeof TARGET_ARCHES)[number];

/** Node.js majors the package is built for and tested on (the bundle targets node20 syntax). */
export const NODE_MAJOR_MIN = 20;
export const TOP_DIR = 'edgeloop-device';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');
export const defaultOutDir = join(repoRoot, 'dist');
const requireFromRepo = createRequire(join(repoRoot, 'package.json'));

/** tfjs-backend-wasm loads the SIMD build where the CPU has it; Node.js never runs the threaded one. */
const WASM_FILES = ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm'] as const;

/** Where aws-crt keeps each architecture's glibc binary inside its npm package. */
const CRT_BINARY_DIR: Record<Arch, string> = { x64: 'linux-x64-glibc', arm64: 'linux-arm64-glibc' };

export interface PackageFile {
  /** Path inside the archive, under TOP_DIR. */
  path: string;
  data: Buffer;
  mode: number;
}

export interface BuiltPackage {
  arch: Arch;
  file: string;
  fileName: string;
  sha256: string;
  /** Sum of the file sizes once unpacked. */
  unpackedBytes: number;
  archiveBytes: number;
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

export function archiveName(arch: Arch, version = packageVersion()): string {
  return `${TOP_DIR}-${version}-linux-${arch}.tar.gz`;
}

const bundleBase: BuildOptions = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  minify: true,
  write: false,
  logLevel: 'silent',
};

/** Nothing in the device imports esbuild (nothing is bundled at run time): the build fails if something does. */
function noEsbuild(): Plugin {
  return {
    name: 'edgeloop-no-esbuild',
    setup(build) {
      build.onResolve({ filter: /^esbuild$/ }, (args) => ({
        errors: [{ text: `${args.importer} imports esbuild, which the device package does not ship` }],
      }));
    },
  };
}

/** `@tensorflow/tfjs` (the union package) resolves to tfjs-lean.ts: no WebGL, converter or data. */
function leanTfjs(): Plugin {
  return {
    name: 'edgeloop-lean-tfjs',
    setup(build) {
      build.onResolve({ filter: /^@tensorflow\/tfjs$/ }, () => ({ path: join(here, 'tfjs-lean.ts') }));
    },
  };
}

export interface DeviceBundle {
  code: Buffer;
  /**
   * Code only some gateways run (an input's client, e.g. node-opcua), in files of their own
   * next to the entry: loaded when first imported, so a gateway without it never parses it.
   */
  chunks: { name: string; code: Buffer }[];
  legal: string;
  /** The npm packages bundled (from esbuild's metafile), e.g. `@aws-sdk/client-s3`. */
  packages: string[];
}

/** The device command and everything it imports, as one ES module and the chunks it imports on demand. */
export async function bundleDevice(): Promise<DeviceBundle> {
  const outdir = join(here, 'out');
  const result = await build({
    ...bundleBase,
    entryPoints: { [TOP_DIR]: join(here, 'edgeloop-device.ts') },
    outdir,
    // What the device imports with import() goes to chunk files beside the entry (lib/, where
    // the wasm files are: a chunk's __dirname must find them): the OPC UA client alone adds
    // about 20 MB of RSS to a process that merely parses it.
    splitting: true,
    chunkNames: '[name]-[hash]',
    outExtension: { '.js': '.mjs' },
    format: 'esm',
    legalComments: 'external',
    metafile: true,
    // The optional native TensorFlow binding is imported by a computed name and never shipped;
    // modbus-serial loads serialport (serial lines, native) in a try/catch, and the device
    // speaks Modbus TCP only; proper-lockfile is an optional peer node-opcua never loads here.
    external: ['@tensorflow/tfjs-node', 'serialport', 'proper-lockfile'],
    // node-opcua finds its classes by name (a minified name breaks every OPC UA connect).
    keepNames: true,
    // CommonJS dependencies (aws-crt, the AWS SDK) need require, and the wasm loader __dirname.
    banner: {
      js: [
        "import { createRequire as __edgeloopRequire } from 'node:module';",
        "import { dirname as __edgeloopDirname } from 'node:path';",
        "import { fileURLToPath as __edgeloopPath } from 'node:url';",
        'const require = __edgeloopRequire(import.meta.url);',
        'const __filename = __edgeloopPath(import.meta.url);',
        'const __dirname = __edgeloopDirname(__filename);',
      ].join(' '),
    },
    plugins: [noEsbuild(), leanTfjs()],
  });
  const outputs = result.outputFiles ?? [];
  const entry = join(outdir, `${TOP_DIR}.mjs`);
  const code = outputs.find((file) => file.path === entry);
  if (!code) throw new Error('esbuild produced no device bundle');
  const chunks = outputs
    .filter((file) => file.path.endsWith('.mjs') && file.path !== entry)
    .map((file) => ({ name: basename(file.path), code: Buffer.from(file.contents) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const legal = outputs
    .filter((file) => file.path.endsWith('.LEGAL.txt'))
    .sort((a, b) => a.path.localeCompare(b.path))
    .map((file) => file.text.trim())
    .join('\n\n');
  const packages = new Set<string>();
  for (const input of Object.keys(result.metafile?.inputs ?? {})) {
    const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
    if (match?.[1]) packages.add(match[1]);
  }
  return { code: Buffer.from(code.contents), chunks, legal, packages: [...packages].sort() };
}

function packageFile(name: string): string {
  return requireFromRepo.resolve(name);
}

/** Every file of the archive for one architecture. */
export function packageFiles(arch: Arch, bundle: DeviceBundle, version = packageVersion()): PackageFile[] {
  const wasmDir = dirname(packageFile('@tensorflow/tfjs-backend-wasm'));
  const crtRoot = join(dirname(packageFile('aws-crt')), '..');
  const crtBinary = join(crtRoot, 'dist', 'bin', CRT_BINARY_DIR[arch], 'aws-crt-nodejs.node');
  const manifest = {
    name: TOP_DIR,
    version,
    private: true,
    description: 'edgeloop gateway device service: verified model updates, local inference, batched results',
    license: 'Apache-2.0',
    type: 'commonjs',
    bin: { [TOP_DIR]: `bin/${TOP_DIR}` },
    engines: { node: `>=${NODE_MAJOR_MIN}` },
    os: ['linux'],
    cpu: [arch],
    edgeloop: { platform: 'linux', arch, libc: 'glibc', nodeMajorMin: NODE_MAJOR_MIN },
  };
  const legal = [
    'Licence notices of the third-party code in this package.',
    '',
    `lib/aws-crt-nodejs.node: aws-crt ${readJson(join(crtRoot, 'package.json')).version} (Apache-2.0)`,
    readFileSync(join(crtRoot, 'NOTICE'), 'utf8').trim(),
    '',
    'lib/*.wasm: @tensorflow/tfjs-backend-wasm (Apache-2.0)',
    '',
    'lib/*.mjs: licence comments of the bundled npm packages (esbuild legalComments)',
    bundle.legal,
  ].join('\n');
  const file = (path: string, data: Buffer | string, mode = 0o644): PackageFile => ({
    path,
    data: Buffer.from(data),
    mode,
  });
  return [
    file(`bin/${TOP_DIR}`, readFileSync(join(here, 'launcher.cjs')), 0o755),
    file(`lib/${TOP_DIR}.mjs`, bundle.code),
    ...bundle.chunks.map((chunk) => file(`lib/${chunk.name}`, chunk.code)),
    ...WASM_FILES.map((name) => file(`lib/${name}`, readFileSync(join(wasmDir, name)))),
    file('lib/aws-crt-nodejs.node', readFileSync(crtBinary), 0o755),
    file('lib/THIRD-PARTY-LICENSES.txt', legal),
    file('package.json', `${JSON.stringify(manifest, null, 2)}\n`),
    file('README.md', readFileSync(join(repoRoot, 'device', 'README.md'))),
    file('packaging/edgeloop-device.service', readFileSync(join(here, 'edgeloop-device.service'))),
    file('packaging/device.example.json', readFileSync(join(here, 'device.example.json'))),
  ];
}

function readJson(path: string): { version: string } {
  return JSON.parse(readFileSync(path, 'utf8')) as { version: string };
}

/** The archive's fixed timestamp: SOURCE_DATE_EPOCH when set (reproducible-builds.org), else 2000-01-01. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): Date {
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === '') return new Date(946_684_800_000);
  const seconds = Number(raw);
  if (!Number.isInteger(seconds) || seconds < 0)
    throw new Error(`SOURCE_DATE_EPOCH must be whole seconds since 1970, got '${raw}'`);
  return new Date(seconds * 1000);
}

/** A tar of the files under TOP_DIR/, every directory listed, sorted, owner 0:0, fixed mtime. */
export async function tarOf(files: readonly PackageFile[], mtime: Date): Promise<Buffer> {
  const dirs = new Set<string>();
  for (const { path } of files) {
    const parts = `${TOP_DIR}/${path}`.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(`${parts.slice(0, i).join('/')}/`);
  }
  type Entry = { name: string; file?: PackageFile };
  const entries: Entry[] = [
    ...[...dirs].map((name) => ({ name })),
    ...files.map((file) => ({ name: `${TOP_DIR}/${file.path}`, file })),
  ].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });
  const owner = { uid: 0, gid: 0, uname: '', gname: '', mtime };
  for (const { name, file } of entries) {
    if (file) tar.entry({ ...owner, name, type: 'file', mode: file.mode, size: file.data.length }, file.data);
    else tar.entry({ ...owner, name, type: 'directory', mode: 0o755 });
  }
  tar.finalize();
  await ended;
  return Buffer.concat(chunks);
}

export const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * Builds the archives for `arches` into `outDir` and writes its SHA256SUMS (`sha256sum -c`
 * format, one line per archive built).
 */
export async function buildDevicePackages(
  options: { outDir?: string; arches?: readonly Arch[]; mtime?: Date } = {},
): Promise<BuiltPackage[]> {
  const outDir = options.outDir ?? defaultOutDir;
  const arches = options.arches ?? TARGET_ARCHES;
  const mtime = options.mtime ?? sourceDateEpoch();
  const version = packageVersion();
  const bundle = await bundleDevice();
  mkdirSync(outDir, { recursive: true });
  const built: BuiltPackage[] = [];
  for (const arch of arches) {
    const files = packageFiles(arch, bundle, version);
    // gzip writes no timestamp or name when compressing a buffer (MTIME 0).
    const archive = gzipSync(await tarOf(files, mtime), { level: 9 });
    const fileName = archiveName(arch, version);
    const file = join(outDir, fileName);
    writeFileSync(file, archive);
    built.push({
      arch,
      file,
      fileName,
      sha256: sha256(archive),
      unpackedBytes: files.reduce((sum, f) => sum + f.data.length, 0),
      archiveBytes: archive.length,
    });
  }
  const sums = built.map((pkg) => `${pkg.sha256}  ${pkg.fileName}\n`).join('');
  writeFileSync(join(outDir, 'SHA256SUMS'), sums);
  return built;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const started = performance.now();
  const outFlag = process.argv.indexOf('--out');
  const outDir = outFlag > 0 ? (process.argv[outFlag + 1] ?? defaultOutDir) : defaultOutDir;
  const built = await buildDevicePackages({ outDir });
  for (const pkg of built)
    process.stdout.write(
      `${pkg.file}  ${(pkg.archiveBytes / 1e6).toFixed(1)} MB (${(pkg.unpackedBytes / 1e6).toFixed(1)} MB unpacked)  sha256 ${pkg.sha256}\n`,
    );
  process.stdout.write(
    `${join(outDir, 'SHA256SUMS')}  (${((performance.now() - started) / 1000).toFixed(1)} s)\n`,
  );
}
