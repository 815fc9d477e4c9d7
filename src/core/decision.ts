import { z } from 'zod';

/** Effects, from the most permissive to the strictest. */
export const EFFECTS = ['allow', 'requireApproval', 'block'] as const;
export type Effect = (typeof EFFECTS)[number];

export function stricterEffect(a: Effect, b: Effect): Effect {
  return EFFECTS.indexOf(a) >= EFFECTS.indexOf(b) ? a : b;
}

const MatchedRuleSchema = z.object({
  /** "id@version" of the policy the rule came from. */
  policy: z.string(),
  rule: z.string(),
  effect: z.enum(EFFECTS),
  reason: z.string().optional(),
  /** The paths the rule matched, when it is about paths (capped; the reason gives the count). */
  paths: z.array(z.string()).optional(),
});
export type MatchedRule = z.infer<typeof MatchedRuleSchema>;

/** What every policy evaluation leaves behind. */
export const DecisionRecordSchema = z.object({
  decisionId: z.string(),
  at: z.string(),
  action: z.string(),
  subject: z.string(),
  effect: z.enum(EFFECTS),
  matchedRules: z.array(MatchedRuleSchema),
  explanation: z.string(),
  /** The effective policy's hash, so a decision can be tied to the exact policy. */
  policyHash: z.string().optional(),
});
export type DecisionRecord = z.infer<typeof DecisionRecordSchema>;
