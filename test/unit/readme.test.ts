import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(__dirname, '..', '..', '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
// The README links the full lists; they live beside the other docs.
const commandsDoc = readFileSync(join(root, 'docs', 'commands.md'), 'utf8');
const settingsDoc = readFileSync(join(root, 'docs', 'settings.md'), 'utf8');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  contributes: {
    commands: { command: string; title: string; category?: string }[];
    configuration: { properties: Record<string, unknown> };
  };
  dependencies: Record<string, string>;
  scripts: Record<string, string>;
};

describe('the README is the front door', () => {
  it('starts with exactly the two set-up commands', () => {
    const firstBlock = /```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    const commands = firstBlock
      .split('\n')
      .map((l) => l.replace(/#.*$/, '').trim())
      .filter(Boolean);
    assert.deepEqual(commands, ['npm ci && npm run demo', 'npm test']);
  });

  it('lists every command of the extension (docs/commands.md, linked from the README)', () => {
    assert.ok(readme.includes('](docs/commands.md)'));
    for (const command of pkg.contributes.commands) {
      assert.equal(command.category, 'Agent Lanes', `${command.command} has the Agent Lanes category (typing "Agent" finds it)`);
      assert.ok(commandsDoc.includes(`| Agent Lanes: ${command.title} |`), `docs/commands.md names "Agent Lanes: ${command.title}"`);
    }
  });

  it('lists every setting (docs/settings.md, linked from the README)', () => {
    assert.ok(readme.includes('](docs/settings.md)'));
    for (const key of Object.keys(pkg.contributes.configuration.properties))
      assert.ok(settingsDoc.includes(`| \`${key}\` |`), `docs/settings.md documents ${key}`);
  });

  it('says why each runtime dependency is there', () => {
    for (const name of Object.keys(pkg.dependencies)) assert.ok(readme.includes(`\`${name}\``), `README lists the dependency ${name}`);
  });
});
