// Unit tests in plain Node: no VS Code, no faked vscode module.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMocha } from './mocha.mjs';

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const result = await runMocha('unit', [join(root, 'out', 'test', 'unit')], { timeout: 120_000, grep: process.argv[2] });
process.exit(result.failed > 0 ? 1 : 0);
