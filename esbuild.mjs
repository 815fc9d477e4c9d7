// One build script for the extension host bundle, the CLI, the review webview
// and the tests. Flags: --production (minified, no source maps), --watch,
// --tests (transpiles and bundles every test file into out/test).
import * as esbuild from 'esbuild';
import { rmSync } from 'node:fs';

const production = process.argv.includes('--production');
const watch = process.argv.includes('--watch');
const tests = process.argv.includes('--tests');
// `--tests a.test.ts b.test.ts` builds only those files (helpers run in parallel).
const testFilter = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));

const common = {
  bundle: true,
  logLevel: 'warning',
  minify: production,
  sourcemap: production ? false : 'linked',
  legalComments: 'none',
};

// The start-up shell requires the lanes bundle at run time: leave that require as it is.
const lanesBundleExternal = {
  name: 'lanes-bundle-external',
  setup(build) {
    build.onResolve({ filter: /^\.\/lanes\.js$/ }, () => ({ path: './lanes.js', external: true }));
  },
};

// The OTLP export requires the OTel bundle at run time, only when agentLanes.telemetry.otlpEndpoint is set:
// leave that require as it is (dist/otel.js is built as an entry of its own beside lanes.js and cli.js).
const otelBundleExternal = {
  name: 'otel-bundle-external',
  setup(build) {
    build.onResolve({ filter: /^\.\/otel\.js$/ }, (args) =>
      /[\\/]src[\\/]infra[\\/]telemetry[\\/]/.test(args.importer) ? { path: './otel.js', external: true } : undefined,
    );
  },
};

// dist/mcp.js ships in the VSIX, so it leaves out what `agent-lanes mcp` never runs: zod's translations
// (`z.locales`; English is loaded on its own) and the SDK's JSON Schema validator for elicitation (ajv).
const mcpSlim = {
  name: 'mcp-slim',
  setup(build) {
    build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      /[\\/]zod[\\/]/.test(args.importer) ? { path: 'zod-locales', namespace: 'mcp-slim' } : undefined,
    );
    build.onResolve({ filter: /^\.\.\/validation\/ajv-provider\.js$/ }, (args) =>
      /[\\/]@modelcontextprotocol[\\/]sdk[\\/]/.test(args.importer) ? { path: 'ajv-provider', namespace: 'mcp-slim' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'mcp-slim' }, (args) => ({
      contents:
        args.path === 'zod-locales'
          ? 'export {};'
          : 'export class AjvJsonSchemaValidator { getValidator() { return () => ({ valid: false, data: undefined, errorMessage: "agent-lanes mcp validates no JSON Schema" }); } }',
      loader: 'js',
    }));
  },
};

/** @type {esbuild.BuildOptions[]} */
let appBuilds = [
  {
    ...common,
    // extension: the start-up shell VS Code loads; lanes: everything else, loaded on first use; cli: agent-lanes.
    // otel: the OpenTelemetry SDK and exporter, loaded only while agentLanes.telemetry.otlpEndpoint is set.
    entryPoints: {
      extension: 'src/vscode/extension.ts',
      lanes: 'src/vscode/lanes.ts',
      cli: 'src/cli/main.ts',
      otel: 'src/infra/telemetry/otel.ts',
    },
    outdir: 'dist',
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    external: ['vscode'],
    plugins: [lanesBundleExternal, otelBundleExternal],
    // Error classes keep their names in the minified bundles (messages and logs show them).
    keepNames: true,
    // Libraries published as ESM only (execa) need import.meta.url under cjs.
    define: { 'import.meta.url': 'importMetaUrl' },
    banner: { js: "const importMetaUrl = require('url').pathToFileURL(__filename).href;" },
    mainFields: ['module', 'main'],
  },
  {
    ...common,
    // `agent-lanes mcp` alone, for an agent's CLI to start inside the agent's boundary.
    entryPoints: { mcp: 'src/cli/mcpMain.ts' },
    outdir: 'dist',
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    plugins: [mcpSlim],
    keepNames: true,
    define: { 'import.meta.url': 'importMetaUrl' },
    banner: { js: "const importMetaUrl = require('url').pathToFileURL(__filename).href;" },
    mainFields: ['module', 'main'],
  },
  {
    ...common,
    entryPoints: { 'webview/review': 'webview-ui/src/main.ts' },
    outdir: 'dist',
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    loader: { '.ttf': 'file' },
    // The codicon font goes beside the bundle, inside the webview's resource root and the VSIX.
    assetNames: 'webview/[name]-[hash]',
  },
];

/** @type {esbuild.BuildOptions} */
const testBuild = {
  bundle: true,
  logLevel: 'warning',
  sourcemap: 'inline',
  entryPoints: ['test/unit/**/*.test.ts', 'test/integration/**/*.ts', 'test/e2e/**/*.ts', 'test/bench/**/*.ts'],
  outbase: 'test',
  outdir: 'out/test',
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  external: ['vscode', 'mocha', 'playwright-core'],
  define: { 'import.meta.url': 'importMetaUrl' },
  banner: { js: "const importMetaUrl = require('url').pathToFileURL(__filename).href;" },
  mainFields: ['module', 'main'],
};

if (tests) {
  if (testFilter.length) {
    await esbuild.build({ ...testBuild, entryPoints: testFilter });
  } else {
    rmSync('out/test', { recursive: true, force: true });
    await esbuild.build(testBuild);
  }
} else if (watch) {
  for (const options of appBuilds) {
    const ctx = await esbuild.context(options);
    await ctx.watch();
  }
  console.log('esbuild: watching for changes');
} else {
  rmSync('dist/webview', { recursive: true, force: true });
  // Maps of an earlier development build must not linger beside a production bundle.
  if (production)
    for (const map of ['dist/extension.js.map', 'dist/lanes.js.map', 'dist/cli.js.map', 'dist/mcp.js.map', 'dist/otel.js.map'])
      rmSync(map, { force: true });
  await Promise.all(appBuilds.map((options) => esbuild.build(options)));
}
