import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAgentsSetting } from '../../src/core/draft/agentConfig';
import { Commands } from '../../src/vscode/constants';
import { SettingKeys, settingName } from '../../src/vscode/settingKeys';

const root = resolve(__dirname, '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  contributes: { commands: { command: string }[]; configuration: { properties: Record<string, unknown> } };
};

describe('the command ids and setting keys match package.json', () => {
  it('declares every command id of the code, and the code names every declared command', () => {
    const declared = pkg.contributes.commands.map((c) => c.command).sort();
    const inCode = Object.values(Commands).sort();
    assert.deepEqual(inCode, declared);
  });

  it('declares every setting key of the code, and the code names every declared setting', () => {
    const declared = Object.keys(pkg.contributes.configuration.properties).sort();
    const inCode = Object.values(SettingKeys).map(settingName).sort();
    assert.deepEqual(inCode, declared);
  });

  it('lists the agents first among the settings, and its snippets fill in agents the extension accepts', () => {
    const properties = pkg.contributes.configuration.properties as Record<
      string,
      { order?: number; defaultSnippets?: { body: unknown }[]; items?: { defaultSnippets?: { body: unknown }[] } }
    >;
    const byOrder = Object.entries(properties).sort(([, a], [, b]) => (a.order ?? 99) - (b.order ?? 99));
    assert.equal(byOrder[0]![0], 'agentLanes.agents', 'the first thing a user sets comes first in the Settings editor');
    const agents = properties['agentLanes.agents']!;
    // A snippet's "${1:my-agent}" becomes "my-agent" once the user accepts the defaults.
    const accepted = (body: unknown): unknown => JSON.parse(JSON.stringify(body).replace(/\$\{\d+:([^}]*)\}/g, '$1'));
    const bodies = [
      ...(agents.defaultSnippets ?? []).map((s) => accepted(s.body)),
      ...(agents.items?.defaultSnippets ?? []).map((s) => [accepted(s.body)]),
    ];
    assert.ok(bodies.length >= 2);
    for (const body of bodies) assert.deepEqual(parseAgentsSetting(body).errors, [], JSON.stringify(body));
  });
});
