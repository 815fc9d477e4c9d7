import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import Mocha from 'mocha';

function testFiles(dir) {
  return readdirSync(dir, { recursive: true })
    .filter((f) => String(f).endsWith('.test.js'))
    .map((f) => join(dir, String(f)))
    .sort();
}

/** Runs mocha on every *.test.js under the folders and prints the level's result line. */
export async function runMocha(level, dirs, { timeout = 60_000, grep } = {}) {
  const mocha = new Mocha({ ui: 'bdd', timeout, reporter: 'spec', ...(grep ? { grep } : {}) });
  for (const dir of dirs) for (const file of testFiles(dir)) mocha.addFile(file);
  await mocha.loadFilesAsync();
  const stats = await new Promise((resolve) => {
    const runner = mocha.run(() => resolve(runner.stats));
  });
  const result = { level, passed: stats.passes, failed: stats.failures };
  console.log(`LANES_LEVEL_RESULT ${JSON.stringify(result)}`);
  console.log(`${level}: ${result.passed} passed, ${result.failed} failed`);
  return result;
}
