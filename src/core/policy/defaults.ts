import { version as extensionVersion } from '../../../package.json';
import { DEFAULT_STOP_CONDITIONS, POLICY_API_VERSION, type PathRule, type PolicyDocument } from './schema';

const BUILTIN_POLICY_ID = 'agent-lanes-local';

const CI_REASON = "CI workflows run with the repository's secrets and deploy rights; change them by hand, not through an agent.";
const SECRET_REASON = "Secrets and credentials never go through an agent's change.";
const INSTRUCTIONS_REASON = 'Agent instruction files steer every later agent run; a person must approve changes to them.';
const LANES_REASON = "Agent Lanes' own configuration (.lanes/) can only be changed with approval.";
const SANDBOX_REASON = 'The dev container defines the sandbox the tasks run in; a person must approve changes to it.';

const block = (glob: string, reason: string): PathRule => ({ glob, effect: 'block', reason });
const approve = (glob: string, reason: string): PathRule => ({ glob, effect: 'requireApproval', reason });

/**
 * The policy that applies when no org endpoint is configured: conservative,
 * so nothing an agent writes reaches CI, secrets or the instructions that
 * steer agents without a person deciding.
 */
export function builtinPolicyDocument(): PolicyDocument {
  return {
    apiVersion: POLICY_API_VERSION,
    metadata: {
      id: BUILTIN_POLICY_ID,
      version: extensionVersion,
      description: 'Built-in conservative policy of Agent Lanes, used when agentLanes.policy.endpoint is empty.',
    },
    killSwitch: { disableDrafts: false, disableSandbox: false, disablePullRequests: false, cancelRunning: false },
    lanes: {
      sandbox: {
        network: { tasks: 'none', preparation: 'none' },
        limits: { cpus: 2, memoryMb: 4096, pids: 1024, timeoutSeconds: 1800 },
        requiredTasks: [],
        processSandbox: 'allowed',
        devcontainer: { allowPrivileged: false, allowHostNetwork: false, allowedMounts: [], allowedCapabilities: [], allowedFeatures: [] },
      },
      agent: {
        isolation: ['process', 'container'],
        network: { allow: [] },
        limits: { cpus: 2, memoryMb: 4096, pids: 1024, timeoutSeconds: 1800, diskMb: 2048 },
      },
      evidence: { required: ['filesTouched', 'agent', 'prompt', 'baseAndHead'] },
      approvals: { minApprovals: 1, forbidSelfApproval: false, sensitivePathReviewers: [] },
      pullRequests: { draftOnly: true, labels: [], reviewers: [], secretInHistory: 'block' },
    },
    pathRules: [
      block('.github/workflows/**', CI_REASON),
      block('.github/actions/**', CI_REASON),
      block('.gitlab-ci.yml', CI_REASON),
      block('.gitlab/ci/**', CI_REASON),
      block('.circleci/**', CI_REASON),
      block('.buildkite/**', CI_REASON),
      block('azure-pipelines.yml', CI_REASON),
      block('**/Jenkinsfile', CI_REASON),
      block('**/.env*', SECRET_REASON),
      block('**/*.pem', SECRET_REASON),
      block('**/*.key', SECRET_REASON),
      block('**/*.p12', SECRET_REASON),
      block('**/*.pfx', SECRET_REASON),
      block('**/*.keystore', SECRET_REASON),
      block('**/*.jks', SECRET_REASON),
      block('**/secrets/**', SECRET_REASON),
      block('**/id_rsa*', SECRET_REASON),
      block('**/id_ecdsa*', SECRET_REASON),
      block('**/id_ed25519*', SECRET_REASON),
      block('**/.ssh/**', SECRET_REASON),
      block('**/.aws/**', SECRET_REASON),
      block('**/.npmrc', SECRET_REASON),
      block('**/.pypirc', SECRET_REASON),
      block('**/.netrc', SECRET_REASON),
      block('**/.git-credentials', SECRET_REASON),
      approve('**/AGENTS.md', INSTRUCTIONS_REASON),
      approve('**/CLAUDE.md', INSTRUCTIONS_REASON),
      approve('**/GEMINI.md', INSTRUCTIONS_REASON),
      approve('.github/copilot-instructions.md', INSTRUCTIONS_REASON),
      approve('.github/instructions/**', INSTRUCTIONS_REASON),
      approve('**/.cursorrules', INSTRUCTIONS_REASON),
      approve('.cursor/rules/**', INSTRUCTIONS_REASON),
      approve('.lanes/**', LANES_REASON),
      approve('.devcontainer/**', SANDBOX_REASON),
      approve('**/.devcontainer.json', SANDBOX_REASON),
    ],
    blastRadius: { maxFiles: 100, maxChangedLines: 5000 },
    stopConditions: { ...DEFAULT_STOP_CONDITIONS },
    sensitivePaths: ['**/auth/**', '**/security/**', '**/crypto/**', '**/permissions/**'],
    secretPatterns: [],
  };
}
