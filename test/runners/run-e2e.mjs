// End-to-end tests: a browser drives a real VS Code with the packaged VSIX installed.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMocha } from './mocha.mjs';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
if (!existsSync(join(root, 'dist', 'agent-lanes.vsix'))) throw new Error('dist/agent-lanes.vsix is missing: run "npm run package" first.');
const result = await runMocha('e2e', [join(root, 'out', 'test', 'e2e')], { timeout: 180_000 });
process.exit(result.failed > 0 ? 1 : 0);
