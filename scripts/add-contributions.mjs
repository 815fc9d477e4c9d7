// Merges a fragment of VS Code contributions into package.json, so several
// people can add commands, menus and settings without overwriting each other.
// Usage: node scripts/add-contributions.mjs fragment.json
// The fragment: { activationEvents?, contributes: { commands?, menus?, configuration: { properties }?, views?, viewsWelcome?, ... } }
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

const [fragmentPath] = process.argv.slice(2);
if (!fragmentPath) {
  console.error('Usage: node scripts/add-contributions.mjs fragment.json');
  process.exit(2);
}
const fragment = JSON.parse(readFileSync(fragmentPath, 'utf8'));
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const c = (pkg.contributes ??= {});
const f = fragment.contributes ?? {};

const mergeBy = (target, items, key) => {
  for (const item of items ?? []) {
    const index = target.findIndex((t) => key(t) === key(item));
    if (index >= 0) target[index] = item;
    else target.push(item);
  }
};
mergeBy((c.commands ??= []), f.commands, (x) => x.command);
for (const [menu, items] of Object.entries(f.menus ?? {}))
  mergeBy(((c.menus ??= {})[menu] ??= []), items, (x) => `${x.command}|${x.when}|${x.group}`);
if (f.configuration?.properties)
  Object.assign(((c.configuration ??= { title: 'Agent Lanes' }).properties ??= {}), f.configuration.properties);
for (const [container, views] of Object.entries(f.views ?? {})) mergeBy(((c.views ??= {})[container] ??= []), views, (x) => x.id);
mergeBy((c.viewsWelcome ??= []), f.viewsWelcome, (x) => `${x.view}|${x.when}`);
mergeBy((c.languageModelTools ??= []), f.languageModelTools, (x) => x.name);
for (const event of fragment.activationEvents ?? []) if (!pkg.activationEvents.includes(event)) pkg.activationEvents.push(event);

writeFileSync('package.json.tmp', `${JSON.stringify(pkg, null, 2)}\n`);
renameSync('package.json.tmp', 'package.json');
console.log(`merged ${fragmentPath} into package.json`);
