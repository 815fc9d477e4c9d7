export interface MachineFacts {
  platform: string;
  osRelease: string | undefined;
  uid: number | undefined;
  missingPackages: string[];
  containersConfOk: boolean;
}
export function demoPreflightProblem(facts: MachineFacts): string | undefined;
export function machineFacts(): MachineFacts;
