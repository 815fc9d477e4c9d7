import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
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
});
