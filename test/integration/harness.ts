import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Mocha from 'mocha';

/**
 * Runs one scenario's mocha suites inside the extension host and reports a
 * machine-readable result line the runner counts.
 */
export function runScenario(scenario: string): Promise<void> {
  const mocha = new Mocha({ ui: 'bdd', timeout: 60_000, color: false, reporter: 'spec' });
  const dir = join(__dirname, '..', scenario);
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.test.js'))
        .sort()
    : [];
  if (!files.length) throw new Error(`Scenario ${scenario} has no tests in ${dir}.`);
  for (const file of files) mocha.addFile(join(dir, file));
  console.log(`LANES_TEST_BEGIN ${scenario}`);
  return new Promise((resolve, reject) => {
    try {
      const runner = mocha.run((failures) => {
        const stats = runner.stats ?? { passes: 0, failures };
        report({ scenario, passed: stats.passes, failed: stats.failures });
        if (failures > 0) reject(new Error(`${failures} test(s) failed in scenario ${scenario}.`));
        else resolve();
      });
    } catch (error) {
      report({ scenario, passed: 0, failed: 1 });
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

/** The browser runner reads the log line; the Electron runner reads the file. */
function report(result: { scenario: string; passed: number; failed: number }): void {
  console.log(`LANES_TEST_RESULT ${JSON.stringify(result)}`);
  const dir = process.env.LANES_RESULT_DIR;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `${result.scenario}.json`), JSON.stringify(result));
  }
}
