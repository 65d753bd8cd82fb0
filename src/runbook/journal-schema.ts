/**
 * The run journal's format: one schema is the type and the check applied when a journal is read back.
 * A journal from a newer persona (a higher version) is refused rather than misread.
 */
import * as z from 'zod';

/** Where migrate takes the data from: `auto` (the failed host, or the backup when it is proven down) or forced. */
export const dataFromChoices = ['auto', 'failed-host', 'backup'] as const;
export type DataFrom = (typeof dataFromChoices)[number];

export const JOURNAL_VERSION = 1;

export const stepKinds = [
  'fence',
  'configure',
  'migrate',
  'validate',
  'switch',
  'monitor',
  'record',
  /** A planned move's copy while the application still serves (persona migrate); recoveries have none. */
  'precopy',
  /** A rollout (persona profile rollout): the candidate on the canary hosts, the comparison, and one outcome. */
  'canary',
  'compare',
  'promote',
  'revert',
] as const;

/**
 * A recovery (the source failed), a planned move (`persona migrate`: both hosts healthy) or a rollout of a candidate
 * profile to an application's instances (`persona profile rollout`).
 */
export const runKinds = ['recover', 'migrate', 'rollout'] as const;
export type RunKind = (typeof runKinds)[number];

const stepStatus = z.enum(['pending', 'running', 'succeeded', 'failed', 'skipped', 'interrupted']);
export const runStatus = z.enum(['planned', 'running', 'succeeded', 'failed', 'interrupted', 'aborted']);

const hostRef = z.object({
  name: z.string(),
  address: z.string(),
  port: z.number().int().optional(),
  user: z.string().optional(),
});

export const stepRecordSchema = z.object({
  kind: z.enum(stepKinds),
  title: z.string(),
  mutates: z.boolean(),
  status: stepStatus,
  attempts: z.number().int().min(0),
  started_at: z.string().optional(),
  finished_at: z.string().optional(),
  duration_ms: z.number().optional(),
  outputs: z.record(z.string(), z.unknown()).optional(),
  log: z.array(z.string()),
  error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }).optional(),
  /**
   * The actions the engine applied, by id, in order: written "running" before the action and "done" or "failed"
   * after it, so a resume knows what ran (absent in journals written before actions existed).
   */
  actions: z
    .array(
      z.object({
        id: z.string(),
        title: z.string(),
        touches: z.string(),
        mutates: z.boolean(),
        observable: z.boolean(),
        status: z.enum(['running', 'done', 'failed']),
        attempt: z.number().int(),
        at: z.string(),
        outputs: z.record(z.string(), z.unknown()).optional(),
        error: z.string().optional(),
      }),
    )
    .optional(),
  skipped_reason: z.string().optional(),
});

export const journalSchema = z.object({
  format: z.literal('persona-run'),
  version: z.literal(JOURNAL_VERSION),
  run_id: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/),
  app: z.string(),
  /** Absent in journals written before planned moves: a recovery. */
  kind: z.enum(runKinds).optional(),
  status: runStatus,
  created_at: z.string(),
  updated_at: z.string(),
  who: z.string(),
  command_line: z.array(z.string()),
  driver: z.object({ pid: z.number().int(), host: z.string() }),
  store: z.string(),
  inventory: z.string(),
  profile: z.object({ id: z.string(), version: z.number(), sha256: z.string() }),
  failed_host: hostRef,
  target_host: hostRef,
  options: z.object({
    force_no_fence: z.boolean(),
    strategy: z.string(),
    /** Where migrate takes the data from (absent in journals written before the option: auto). */
    data_from: z.enum(dataFromChoices).optional(),
    /** A planned move: copy while the application serves first (absent: yes); false is stop-copy-start. */
    precopy: z.boolean().optional(),
    /** A planned move's check of the final copy: metadata (sizes, mtimes, modes, owners; default) or contents. */
    verify: z.enum(['metadata', 'contents']).optional(),
  }),
  /** The top candidates and the chosen target (see journal-ranking.ts); every host in older journals. */
  ranking: z.array(
    z.object({
      host: z.string(),
      verdict: z.string(),
      rank: z.number().optional(),
      score: z.number().optional(),
      /** The host's facts came from the fact cache, probed this many seconds before the ranking. */
      facts_age_s: z.number().optional(),
      reasons: z.array(z.string()),
    }),
  ),
  /**
   * Since the ranking keeps only the top candidates and the target: how many hosts were ranked, and why the
   * others were rejected (hosts per reason code). Absent in journals written before.
   */
  ranking_summary: z
    .object({
      candidates: z.number().int(),
      eligible: z.number().int(),
      rejected: z.number().int(),
      rejected_by_reason: z.record(z.string(), z.number().int()),
      /** How many hosts were ranked from the fact cache rather than probed (absent in older journals). */
      facts_from_cache: z.number().int().optional(),
    })
    .optional(),
  /**
   * The host the provision command created for this run (no inventory host could take the application): its
   * inventory entry as the command printed it, so that a resume finds the host though it is in no inventory file.
   */
  provisioned: z
    .object({
      entry: z.object({
        name: z.string(),
        address: z.string(),
        port: z.number().int().optional(),
        user: z.string().optional(),
        key_file: z.string().optional(),
        jump: z.string().optional(),
        labels: z.record(z.string(), z.string()),
        apps: z.array(z.string()),
      }),
      command: z.array(z.string()),
      at: z.string(),
      duration_ms: z.number(),
    })
    .optional(),
  /**
   * A rollout's own facts (kind "rollout"; failed_host and target_host then both name the first canary host): the
   * candidate's text, the version it replaces, the groups and the thresholds.
   */
  rollout: z
    .object({
      candidate_text: z.string(),
      candidate_sha256: z.string(),
      from_version: z.number().int(),
      canary: z.array(z.string()),
      control: z.array(z.string()),
      window_s: z.number(),
      batch: z.number().int().min(1),
      health_wait_s: z.number(),
      max_cpu_increase_pct: z.number().optional(),
      max_memory_increase_pct: z.number().optional(),
    })
    .optional(),
  steps: z.array(stepRecordSchema),
});

export type Journal = z.infer<typeof journalSchema>;
export type StepRecord = z.infer<typeof stepRecordSchema>;
export type StepKind = (typeof stepKinds)[number];
export type StepStatus = z.infer<typeof stepStatus>;
export type RunStatus = z.infer<typeof runStatus>;
export type HostRef = z.infer<typeof hostRef>;
export type Provisioned = NonNullable<Journal['provisioned']>;
export type RolloutFacts = NonNullable<Journal['rollout']>;
