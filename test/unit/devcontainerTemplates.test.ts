import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkTemplate, TEMPLATES_DIR, templateNames, type TemplateOutcome } from './support/devcontainerTemplates';

/**
 * Every official dev container template and image configuration
 * (test/fixtures/devcontainer-templates) through the sandbox's check under
 * the built-in policy. expectations.json lists each file's outcome and the
 * words its refusal must contain (the field and the policy setting); when a
 * check changes what passes, update that file: the figure follows from it.
 * AGENT_LANES_UPDATE_EXPECTATIONS=1 rewrites it from the current outcomes.
 */
interface Expectation {
  outcome: TemplateOutcome['outcome'];
  /** Words the refusal must contain: the field and the policy setting. */
  mentions?: string[];
}

const EXPECTATIONS_FILE = join(TEMPLATES_DIR, 'expectations.json');

describe('official dev container templates under the built-in policy', () => {
  const expectations = JSON.parse(readFileSync(EXPECTATIONS_FILE, 'utf8')) as Record<string, Expectation>;
  const names = templateNames();

  it('has an expectation for every configuration of the corpus, and none for a missing one', () => {
    assert.deepEqual(Object.keys(expectations).sort(), [...names].sort());
  });

  it('passes and refuses each configuration as expected, naming the field and the policy setting', async () => {
    const outcomes = await Promise.all(names.map((name) => checkTemplate(name)));
    if (process.env.AGENT_LANES_UPDATE_EXPECTATIONS === '1') {
      const updated = Object.fromEntries(
        outcomes.map((o) => [
          o.name,
          { outcome: o.outcome, ...(expectations[o.name]?.mentions ? { mentions: expectations[o.name]!.mentions } : {}) },
        ]),
      );
      writeFileSync(EXPECTATIONS_FILE, `${JSON.stringify(updated, null, 2)}\n`);
    }
    const wrong: string[] = [];
    for (const outcome of outcomes) {
      const expected = expectations[outcome.name];
      if (!expected) continue;
      if (outcome.outcome !== expected.outcome)
        wrong.push(`${outcome.name}: ${outcome.outcome}, expected ${expected.outcome} ${outcome.message ?? ''}`);
      for (const word of expected.mentions ?? [])
        if (!outcome.message?.includes(word))
          wrong.push(`${outcome.name}: the refusal does not mention "${word}": ${outcome.message ?? '(passed)'}`);
    }
    assert.deepEqual(wrong, []);
    const passing = outcomes.filter((o) => o.outcome === 'passes').length;
    assert.equal(passing, Object.values(expectations).filter((e) => e.outcome === 'passes').length);
  });

  it('names the Compose file, service, field and policy setting in every Compose refusal', async () => {
    for (const name of names) {
      const outcome = await checkTemplate(name);
      if (!outcome.message?.includes('uses Docker Compose')) continue;
      for (const line of outcome.message.split('\n').filter((l) => l.startsWith('- '))) {
        assert.match(line, /^- \.devcontainer\/[^:]+: (?:services\.[^.\s:]+\.[a-z_]+|service|dockerComposeFile)/, `${name}: ${line}`);
        assert.match(
          line,
          /\((?:policy can allow it with lanes\.sandbox\.devcontainer\.\w+|no policy setting allows it)\)$/,
          `${name}: ${line}`,
        );
      }
    }
  });
});
