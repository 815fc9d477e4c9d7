// Dev container coverage (not a time): how many of the official templates' and
// images' devcontainer.json files (test/fixtures/devcontainer-templates) pass the
// sandbox's check under the built-in policy.
// - devcontainer.templatesPassing, devcontainer.templatesTotal
// - devcontainer.refusedFeatures, devcontainer.refusedOther: why the others are refused
import { checkTemplate, templateNames } from '../unit/support/devcontainerTemplates';

async function main(): Promise<void> {
  const outcomes = await Promise.all(templateNames().map((name) => checkTemplate(name)));
  const refused = outcomes.filter((outcome) => outcome.outcome !== 'passes');
  for (const outcome of refused) console.error(`${outcome.name}: ${(outcome.message ?? '').split('\n').slice(0, 3).join(' ')}`);
  // A registry feature is refused by name (its metadata cannot be read offline); a local one with no preparation network as a feature too.
  const features = refused.filter((outcome) => /features\["|uses dev container features/.test(outcome.message ?? '')).length;
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      'devcontainer.templatesPassing': outcomes.length - refused.length,
      'devcontainer.templatesTotal': outcomes.length,
      'devcontainer.refusedFeatures': features,
      'devcontainer.refusedOther': refused.length - features,
    })}`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
