import { z } from 'zod';
import { CHAT_AGENT_ID } from '../constants';

/** Where a CLI agent runs. `host` (no boundary) only where a policy names it. */
export const AGENT_ISOLATION_BACKENDS = ['container', 'process', 'host'] as const;
export type AgentIsolationBackend = (typeof AGENT_ISOLATION_BACKENDS)[number];
/** Used when no level names the backends: never the host. */
export const DEFAULT_AGENT_ISOLATION: readonly AgentIsolationBackend[] = ['process', 'container'];

/**
 * What is kept of a running agent's boundary before the agent starts, so that
 * a run whose editor crashed can be found and stopped later: the process
 * group of the sandbox (with its start time, so a reused pid is never
 * signalled) or the name of its container.
 */
export const BoundaryHandleSchema = z.object({
  backend: z.enum(AGENT_ISOLATION_BACKENDS),
  pid: z.number().int().positive().optional(),
  /** Field 22 of /proc/<pid>/stat when the run started: the pid is ours only while this matches. */
  pidStartTicks: z.string().optional(),
  containerName: z.string().optional(),
  engine: z.string().optional(),
});
export type BoundaryHandle = z.infer<typeof BoundaryHandleSchema>;

/** One thing the canary tried that must fail inside the boundary. */
export const CanaryProbeSchema = z.object({
  name: z.enum(['writeOutside', 'readHome', 'editorEnvironment', 'connectHost', 'proxyRefuses', 'push']),
  /** refused: the boundary held; escaped: it did not; skipped: nothing to try here (the detail says why). */
  outcome: z.enum(['refused', 'escaped', 'skipped']),
  detail: z.string().max(2000),
});
export type CanaryProbe = z.infer<typeof CanaryProbeSchema>;

const EgressRecordSchema = z.object({ host: z.string(), port: z.number(), at: z.string(), reason: z.string().optional() });
export type EgressRecord = z.infer<typeof EgressRecordSchema>;

const AgentLimitsSchema = z.object({
  cpus: z.number().optional(),
  memoryMb: z.number().optional(),
  pids: z.number().optional(),
  timeoutSeconds: z.number(),
  diskMb: z.number().optional(),
});
export type AgentLimits = z.infer<typeof AgentLimitsSchema>;

/** The boundary an agent ran in, as the evidence and the review show it. */
export const IsolationEvidenceSchema = z.object({
  backend: z.enum(AGENT_ISOLATION_BACKENDS),
  /** The canary ran inside the same boundary and every probe was refused. */
  verified: z.boolean(),
  /** "bubblewrap 0.8.0", "podman 4.3.1". */
  sandbox: z.string().optional(),
  image: z.string().optional(),
  imageDigest: z.string().optional(),
  network: z.object({
    allow: z.array(z.string()),
    /** Connections the allowlisting proxy refused (capped). */
    refused: z.array(EgressRecordSchema),
    refusedTotal: z.number().int().nonnegative(),
    allowedTotal: z.number().int().nonnegative(),
  }),
  limits: AgentLimitsSchema,
  /** Limits this backend cannot enforce (shown, not hidden). */
  notEnforced: z.array(z.string()),
  probes: z.array(CanaryProbeSchema),
  canaryMs: z.number().optional(),
  /** Set when the boundary stopped the agent (a limit was reached). */
  stoppedFor: z.string().optional(),
});
export type IsolationEvidence = z.infer<typeof IsolationEvidenceSchema>;

/** How many refused connections the evidence lists one by one. */
export const MAX_LISTED_REFUSALS = 20;

/** Probes that escaped: the run must not go on. */
export function escapedProbes(probes: readonly CanaryProbe[]): CanaryProbe[] {
  return probes.filter((probe) => probe.outcome === 'escaped');
}

/** One line for the evidence and the review: "isolation verified: process (bubblewrap 0.8.0) · network off". */
export function describeIsolation(isolation: IsolationEvidence): string {
  const what = [isolation.backend, isolation.sandbox ? `(${isolation.sandbox})` : '', isolation.image ? `image ${isolation.image}` : '']
    .filter(Boolean)
    .join(' ');
  if (isolation.backend === 'host') return 'unconfined: the agent ran as you, on the host, with your files and network';
  const network = isolation.network.allow.length ? `egress only to ${isolation.network.allow.join(', ')}` : 'network off';
  const refused = isolation.network.refusedTotal
    ? ` · ${isolation.network.refusedTotal} connection${isolation.network.refusedTotal === 1 ? '' : 's'} refused: ${isolation.network.refused
        .slice(0, 3)
        .map((r) => `${r.host}:${r.port}`)
        .join(', ')}${isolation.network.refusedTotal > 3 ? ', …' : ''}`
    : '';
  return `${isolation.verified ? 'isolation verified' : 'isolation NOT verified'}: ${what} · ${network}${refused}`;
}

/** The line for a change whose agent worked in VS Code's chat: it had no process of ours to put in a boundary. */
export const CHAT_AGENT_ISOLATION = "no CLI agent boundary (chat agent): the agent worked through the lane's tools in VS Code's chat";

/**
 * The boundary line of a change's evidence, for the PR body and the Lanes
 * tree; `bad` when the agent ran unconfined or its boundary was not verified.
 * Undefined for evidence from before agent boundaries.
 */
export function describeAgentBoundary(evidence: {
  agent: { id: string };
  isolation?: IsolationEvidence | undefined;
}): { line: string; bad: boolean } | undefined {
  if (evidence.isolation)
    return { line: describeIsolation(evidence.isolation), bad: evidence.isolation.backend === 'host' || !evidence.isolation.verified };
  if (evidence.agent.id === CHAT_AGENT_ID) return { line: CHAT_AGENT_ISOLATION, bad: false };
  return undefined;
}

export type BackendAvailability = Partial<Record<AgentIsolationBackend, { available: true } | { available: false; message: string }>>;

export type BackendChoice = { ok: true; backend: AgentIsolationBackend } | { ok: false; message: string };

/**
 * The backend a run uses: the agent's own request if policy allows it, else
 * the first allowed backend that works here. `host` is taken only when named
 * by policy; nothing falls back to it because the others are missing.
 */
export function chooseBackend(
  allowed: readonly AgentIsolationBackend[],
  requested: AgentIsolationBackend | undefined,
  availability: BackendAvailability,
): BackendChoice {
  const candidates = requested ? [requested] : allowed.filter((backend) => backend !== 'host' || allowed[0] === 'host');
  if (requested && !allowed.includes(requested))
    return {
      ok: false,
      message: `The agent asks for the "${requested}" isolation, which policy does not allow here (lanes.agent.isolation: ${allowed.join(', ') || 'none'}). Remove "isolation" from the agent's entry in agentLanes.agents, or ask your platform team.`,
    };
  const reasons: string[] = [];
  for (const backend of candidates) {
    const state = backend === 'host' ? { available: true as const } : availability[backend];
    if (state?.available) return { ok: true, backend };
    reasons.push(`${backend}: ${state && !state.available ? state.message : 'not available'}`);
  }
  return {
    ok: false,
    message: `No isolation boundary can run the agent here, so it was not started (nothing runs unconfined). ${reasons.join(' ')}`,
  };
}
