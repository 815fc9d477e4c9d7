import { runScenario } from '../harness';

export function run(): Promise<void> {
  return runScenario('policy');
}
