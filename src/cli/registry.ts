/**
 * Every persona command, declared as data. Modules load lazily so `persona --help` starts fast.
 */
import type { CommandSpec, GroupSpec } from './spec.js';

export const groups: GroupSpec[] = [
  { name: 'profile', summary: 'read, check and change persona profiles' },
  { name: 'hosts', summary: 'list the inventory, probe hosts over SSH, rank them for a profile' },
  { name: 'locks', summary: 'who holds which application lock' },
  { name: 'runs', summary: 'recovery runs: list, show, resume' },
];

const idArg = { name: 'id', description: 'application id', required: true };

/** Shared by recover and runs resume: after migrate refuses a stale-looking backup, resume may accept it. */
const dataFromOption = {
  flags: '--data-from <source>',
  description:
    'where migrate takes the data: auto (the failed host; its backup only when the host is proven down), failed-host, or backup (accept a possibly older backup)',
  choices: ['auto', 'failed-host', 'backup'],
};

const maxFactAgeOption = {
  flags: '--max-fact-age <seconds>',
  description:
    'rank hosts from cached facts at most this old (the target is probed again before use); 0: probe every host (default: the max_fact_age setting, 300)',
  integer: true,
};

export const commands: CommandSpec[] = [
  {
    path: ['profile', 'list'],
    globals: ['store'],
    summary: 'list the profiles in the store',
    examples: [
      ['persona profile list', 'a table of ids, versions and requirements'],
      ['persona profile list --json', 'the same as JSON'],
      ['persona profile list --store etcd://127.0.0.1:2379/persona', 'from another store'],
    ],
    load: () => import('./commands/profile-list.js'),
  },
  {
    path: ['profile', 'show'],
    globals: ['store'],
    summary: 'show one profile',
    args: [idArg],
    options: [{ flags: '--version <n>', description: 'an earlier version from the history', integer: true }],
    examples: [
      ['persona profile show demo-web', 'the profile text on stdout, its version on stderr'],
      [
        'persona profile show demo-web > demo-web.json',
        'a file to edit and write back with profile set --expect-version',
      ],
      ['persona profile show demo-web --json', 'the normalised profile as JSON (defaults filled in)'],
      ['persona profile show demo-web --version 2', 'version 2 from the history'],
    ],
    load: () => import('./commands/profile-show.js'),
  },
  {
    path: ['profile', 'validate'],
    summary: 'check profile files; all problems at once, each with its JSON path',
    args: [
      {
        name: 'files',
        description:
          'profile files (JSON), or directories: the *.json files directly in them, not subdirectories',
        required: true,
        variadic: true,
      },
    ],
    examples: [
      [
        'persona profile validate profiles',
        'check every profile in a directory (profiles/schema/ is not read)',
      ],
      ['persona profile validate profiles/*.json', 'the same, by file name'],
      ['persona profile validate new.json --json', 'problems as JSON, for editors and CI'],
    ],
    load: () => import('./commands/profile-validate.js'),
  },
  {
    path: ['profile', 'edit'],
    globals: ['store', 'state'],
    summary: 'edit a profile in $VISUAL/$EDITOR; validated, and never overwrites a concurrent change',
    args: [idArg],
    options: [
      { flags: '-m, --message <text>', description: 'why the profile changed (kept in the history)' },
    ],
    examples: [
      ['persona profile edit demo-web', 'opens the profile in your editor; saves it when valid'],
      ['EDITOR=nano persona profile edit demo-web -m "more RAM"', 'with another editor and a history note'],
    ],
    load: () => import('./commands/profile-edit.js'),
  },
  {
    path: ['profile', 'set'],
    globals: ['store'],
    summary: 'write a profile from a file (the non-interactive edit)',
    args: [idArg],
    options: [
      { flags: '-f, --file <path>', description: 'the profile file; - for stdin' },
      {
        flags: '--expect-version <n>',
        description: 'write only if the stored version is still N (0: only if it does not exist yet)',
        integer: true,
      },
      { flags: '-m, --message <text>', description: 'why the profile changed (kept in the history)' },
    ],
    examples: [
      ['persona profile set demo-web --file demo-web.json', 'validate and write'],
      [
        'persona profile set demo-web --file demo-web.json --expect-version 3',
        'write only if nobody changed version 3 meanwhile',
      ],
      ['persona profile set new-app --file new-app.json --expect-version 0', 'create; refuse if it exists'],
    ],
    load: () => import('./commands/profile-set.js'),
  },
  {
    path: ['profile', 'diff'],
    globals: ['store'],
    summary: 'show what changed between a stored version and the current one (or a file)',
    args: [idArg],
    options: [
      { flags: '--version <n>', description: 'compare this version with the current one', integer: true },
      { flags: '-f, --file <path>', description: 'compare the current version with this file' },
    ],
    examples: [
      ['persona profile diff demo-web', 'the last change'],
      ['persona profile diff demo-web --version 2', 'from version 2 to the current version'],
      ['persona profile diff demo-web --file mine.json', 'what writing mine.json would change'],
    ],
    load: () => import('./commands/profile-diff.js'),
  },
  {
    path: ['profile', 'history'],
    globals: ['store'],
    summary: 'list the versions of a profile: who changed it, when and why',
    args: [idArg],
    examples: [['persona profile history demo-web', 'newest first']],
    load: () => import('./commands/profile-history.js'),
  },
  {
    path: ['profile', 'tune'],
    globals: ['store', 'confirm'],
    summary: 'propose requirement changes from observations, with the evidence; write them once confirmed',
    description:
      'Reads the observations and recorded outcomes of an application over a window, shows p50/p95 of CPU, memory, disk and latency against the targets and requirements, and proposes changes to required_ram_gb and required_cores with their evidence. A confirmed proposal is written as a new version by compare-and-set (exit 4 if the profile changed meanwhile). Lowering needs a long, wide, clean history and keeps a safety margin. Without a terminal, only --yes confirms (exit 3 otherwise).',
    args: [idArg],
    options: [
      {
        flags: '--since <duration>',
        description: 'how far back to read observations: 30m, 36h, 7d, 2w',
        default: '7d',
      },
      { flags: '--dry-run', description: 'show the evidence, the proposals and the diff; write nothing' },
    ],
    examples: [
      [
        'persona profile tune demo-web --dry-run',
        'the evidence, the proposals and the diff; nothing written',
      ],
      ['persona profile tune demo-web', 'asks before writing the proposed version'],
      [
        'persona profile tune demo-web --since 3d --yes --json',
        'CI: write the proposals, the result as JSON',
      ],
    ],
    load: () => import('./commands/profile-tune.js'),
  },
  {
    path: ['profile', 'rollout'],
    globals: ['store', 'hosts', 'confirm', 'state'],
    summary: 'try a candidate profile on some instances, compare, then promote or revert it automatically',
    description:
      'For an application that runs on several hosts: configures the candidate (validated, same id) on the canary hosts and restarts it there, checks their health, then samples health, CPU and memory on the canary and the control hosts over a window. A canary health failure, a target the canary misses and the control meets, or a rise beyond --max-cpu-increase / --max-memory-increase reverts it (the current version is re-applied on the canary); otherwise it is promoted: written as the next version (only over the version the rollout started from) and rolled to the control hosts in batches. Journalled and resumable (persona runs resume RUN) like a recovery. Exit 0: promoted; 4: reverted (the profile and every host stay on the current version).',
    args: [{ name: 'app', description: 'application id', required: true }],
    options: [
      { flags: '--candidate <file>', description: 'the candidate profile (JSON)' },
      { flags: '--canary <n>', description: 'how many instances try it first (default 1)', integer: true },
      {
        flags: '--window <s>',
        description: 'seconds canary and control are sampled (default 60)',
        integer: true,
      },
      {
        flags: '--batch <n>',
        description: 'control hosts configured at a time when promoting (default 1)',
        integer: true,
      },
      {
        flags: '--max-cpu-increase <pct>',
        description: "revert when the canary's CPU is more than PCT points above the control's",
        integer: true,
      },
      {
        flags: '--max-memory-increase <pct>',
        description: "revert when the canary's memory is more than PCT points above the control's",
        integer: true,
      },
      {
        flags: '--health-wait <s>',
        description: 'seconds a restarted instance has to pass its health checks (default 60)',
        integer: true,
      },
      { flags: '--dry-run', description: 'look and plan, change nothing, say what each step would do' },
    ],
    examples: [
      [
        'persona profile rollout demo-web --candidate demo-web.json --yes',
        'one canary, 60 s, then promote or revert',
      ],
      [
        'persona profile rollout demo-web --candidate new.json --canary 1 --window 120 --batch 2 --max-cpu-increase 10',
        'with a CPU threshold, promoted two hosts at a time',
      ],
      ['persona profile rollout demo-web --candidate new.json --dry-run', 'what it would do'],
    ],
    streams: true,
    load: () => import('./commands/profile-rollout.js'),
  },
  {
    path: ['profile', 'new'],
    summary: 'print a valid skeleton profile to fill in',
    args: [idArg],
    options: [{ flags: '-o, --output <file>', description: 'write it to a file (refuses to overwrite)' }],
    examples: [
      ['persona profile new billing-api > billing-api.json', 'a skeleton on stdout'],
      ['persona profile new billing-api -o billing-api.json && $EDITOR billing-api.json', 'then fill it in'],
    ],
    load: () => import('./commands/profile-new.js'),
  },
  {
    path: ['profile', 'delete'],
    globals: ['store', 'confirm'],
    summary: 'delete a profile (its history is kept)',
    args: [idArg],
    options: [
      {
        flags: '--expect-version <n>',
        description: 'delete only if the stored version is still N',
        integer: true,
      },
    ],
    examples: [['persona profile delete old-app --yes', 'without asking']],
    load: () => import('./commands/profile-delete.js'),
  },
  {
    path: ['locks', 'list'],
    globals: ['store'],
    summary: 'list the locks held in the store: holder, host, pid, run and since when',
    examples: [
      ['persona locks list', 'a table of held locks'],
      ['persona locks list --json --store consul://127.0.0.1:8500/persona', 'as JSON, from a Consul store'],
    ],
    load: () => import('./commands/locks-list.js'),
  },
  {
    path: ['hosts', 'list'],
    summary:
      'what persona read from the inventory, without connecting: how each host is reached, labels, apps, warnings',
    args: [{ name: 'hosts', description: 'host names from the inventory (default: all)', variadic: true }],
    examples: [
      ['persona hosts list --inventory hosts.ini', 'a table of hosts, then every variable that was left out'],
      ['persona hosts list web01 --inventory hosts.ini', 'one host'],
      ["persona hosts list --json | jq '.warnings[]'", 'the warnings as data'],
    ],
    load: () => import('./commands/hosts-list.js'),
  },
  {
    path: ['hosts', 'probe'],
    globals: ['hosts', 'store'],
    summary: 'probe hosts over SSH: cores, memory, storage, packages, OS, load',
    description:
      'Probes hosts over SSH: cores, memory, storage, packages, OS, load. A host that does not answer is a result with its reason (exit 0 while any host answers); exit 4 when none does.',
    args: [{ name: 'hosts', description: 'host names from the inventory (default: all)', variadic: true }],
    options: [
      { flags: '--path <dir>', description: 'the data path whose free storage is measured', default: '/' },
      {
        flags: '--package <spec>',
        description: 'a package to look up (name or name=version); repeatable',
        repeatable: true,
      },
      {
        flags: '--profile <id>',
        description: "measure the profile's data path and look up its software stack",
      },
      {
        flags: '--cache',
        description:
          "write the facts to the store's fact cache, where recover and migrate rank from them (with --profile: for that profile)",
      },
    ],
    examples: [
      ['persona hosts probe --inventory lab.json', 'every host of the inventory'],
      [
        'persona hosts probe lab-2 lab-3 --profile demo-web',
        "two hosts, with demo-web's data path and packages",
      ],
      ["persona hosts probe --json | jq '.hosts[] | select(.ok == false)'", 'the hosts that did not answer'],
      ['persona hosts probe --profile demo-web --cache', "fill the fact cache for demo-web's recoveries"],
    ],
    load: () => import('./commands/hosts-probe.js'),
  },
  {
    path: ['hosts', 'rank'],
    globals: ['hosts', 'store'],
    summary: 'rank hosts for a profile: every rejection with its reason, every score with its breakdown',
    options: [
      { flags: '--profile <id>', description: 'the application to place (required)' },
      { flags: '--failed <host>', description: 'the failed host (never a candidate, not probed)' },
      { flags: '--exclude <host>', description: 'never consider this host; repeatable', repeatable: true },
      {
        flags: '--strategy <name>',
        description: 'best-fit (closest match), spread (fewest apps), most-free',
        choices: ['best-fit', 'spread', 'most-free'],
        default: 'best-fit',
      },
      maxFactAgeOption,
    ],
    examples: [
      ['persona hosts rank --profile demo-web --failed lab-1', 'where demo-web should go if lab-1 died'],
      [
        'persona hosts rank --profile demo-web --strategy most-free --json',
        'with the score breakdown as JSON',
      ],
    ],
    load: () => import('./commands/hosts-rank.js'),
  },
  {
    path: ['recover'],
    globals: ['store', 'hosts', 'confirm', 'state'],
    summary: 'recover the applications of a failed host onto the best other host',
    description:
      "Finds what ran on HOST, ranks the other hosts for each application, shows the plan, and with confirmation fences HOST, configures the new host, migrates the data, validates, switches traffic, monitors and records. When no host can take an application and a provision command is set (the profile's provision, else the provision setting), it creates one after confirmation and recovers onto it. Every run is journalled and can be resumed.",
    args: [{ name: 'host', description: 'the failed host (inventory name or address)' }],
    options: [
      {
        flags: '--app <id>',
        description:
          'only this application; repeatable. One nothing records yet is recorded on HOST, after confirmation',
        repeatable: true,
      },
      { flags: '--target <host>', description: 'use this host (still checked against the requirements)' },
      {
        flags: '--dry-run',
        description: 'probe and plan for real, change nothing, say what each step would do',
      },
      { flags: '--step', description: 'confirm each step before it runs' },
      {
        flags: '--serial',
        description:
          'run the steps one at a time in order, instead of overlapping those that can (the fence and configure)',
      },
      {
        flags: '--force-no-fence',
        description: 'switch traffic even when the failed host could not be fenced (confirmed separately)',
      },
      dataFromOption,
      { flags: '--resume <run>', description: 'go on with a run from its journal' },
      { flags: '--exclude <host>', description: 'never use this host; repeatable', repeatable: true },
      {
        flags: '--strategy <name>',
        description: 'host ranking: best-fit, spread, most-free',
        choices: ['best-fit', 'spread', 'most-free'],
        default: 'best-fit',
      },
      maxFactAgeOption,
    ],
    examples: [
      ['persona recover web-2', 'interactive: pick the host from the ranking, confirm the plan'],
      ['persona recover web-2 --dry-run', 'what would happen, without changing anything'],
      ['persona recover web-2 --yes --json', 'for CI: NDJSON events, then a result line'],
      ['persona recover web-2 --app api --target web-7', 'one application, onto a chosen host'],
      [
        'persona recover web-2 --app api --yes',
        'api, recorded on web-2 first if nothing records where it runs',
      ],
      ['persona recover --resume 20261127T031500Z-api-3f2a1c', 'go on after a crash or Ctrl-C'],
      [
        'PERSONA_PROVISION=\'["/usr/local/bin/make-host"]\' persona recover web-2 --yes',
        'no host fits: create one with make-host, then recover onto it',
      ],
    ],
    streams: true,
    load: () => import('./commands/recover.js'),
  },
  {
    path: ['migrate'],
    globals: ['store', 'hosts', 'confirm', 'state'],
    summary: 'move an application to another host while both are healthy, with the least downtime',
    description:
      "A planned move (maintenance, a better fit): configures the target, copies the data while the application still serves (rsync passes until the delta is small), then stops it on the source and takes the source out of rotation (fence evidence as in a recovery), copies the final changes, starts it on the target, moves traffic and monitors. A prober through the balancer (the route's verify_url, 20 Hz) measures the downtime, shown at the end and kept in the journal. Journalled and resumable (persona runs resume RUN) like a recovery.",
    args: [{ name: 'app', description: 'application id', required: true }],
    options: [
      {
        flags: '--to <host>',
        description: 'the target (still checked against the requirements); absent: the best host',
      },
      {
        flags: '--from <host>',
        description: "where it runs now; absent: the store's record, else the inventory",
      },
      {
        flags: '--dry-run',
        description: 'probe and plan for real, change nothing, say what each step would do',
      },
      { flags: '--step', description: 'confirm each step before it runs' },
      { flags: '--serial', description: 'run the steps one at a time in order' },
      {
        flags: '--stop-copy-start',
        description: 'no copy while it serves: stop, copy everything, start (to compare downtime)',
      },
      {
        flags: '--verify <how>',
        description:
          "how the final copy is checked: metadata (sizes, mtimes, modes, owners, and rsync's checksum of each file it copies; default) or contents (sha256 of every file, inside the downtime)",
        choices: ['metadata', 'contents'],
        default: 'metadata',
      },
      { flags: '--exclude <host>', description: 'never use this host; repeatable', repeatable: true },
      {
        flags: '--strategy <name>',
        description: 'host ranking: best-fit, spread, most-free',
        choices: ['best-fit', 'spread', 'most-free'],
        default: 'best-fit',
      },
      maxFactAgeOption,
    ],
    examples: [
      [
        'persona migrate demo-web --to lab-2',
        'interactive: shows the plan, asks, moves, reports the downtime',
      ],
      ['persona migrate demo-web --to lab-2 --dry-run', 'what would happen, without changing anything'],
      ['persona migrate demo-web --to lab-2 --yes --json', 'for CI: NDJSON events, then a result line'],
      [
        'persona migrate demo-web --to lab-2 --stop-copy-start --yes',
        'the naive way, to compare its downtime',
      ],
    ],
    streams: true,
    load: () => import('./commands/migrate.js'),
  },
  {
    path: ['watch'],
    globals: ['store', 'hosts', 'confirm'],
    summary:
      'watch every assigned application: health from this machine and a peer host, events when a failure counts',
    description:
      "Checks every application the store assigns to a host, in rounds: the profile's health checks and `ssh HOST true` from this machine, the same ports from a peer host over SSH, the status endpoint and (every 6th round) CPU and memory against performance_metrics. A failure counts when N of the last M rounds failed as seen from two vantage points (from this machine alone when there is no other host, which the event says). Grace after a deploy, a recovery or an ack; at most --flap-budget failure events per application per hour. Events go to the reporter (NDJSON under --json), --events FILE, --on-failure and --webhook. Runs until SIGINT/SIGTERM (exit 130), or with --once one window of M rounds: exit 0 healthy, 6 when a failure counts.",
    options: [
      {
        flags: '--once',
        description: 'one window of rounds, then exit (cron, CI): 0 healthy, 6 a failure counts',
      },
      { flags: '--interval <s>', description: 'seconds between rounds', integer: true, default: '10' },
      {
        flags: '--rounds <m>',
        description: 'M: the window of rounds (a profile may set its own)',
        integer: true,
      },
      {
        flags: '--failures <n>',
        description: 'N: failed rounds among the last M that make a failure count',
        integer: true,
      },
      {
        flags: '--grace <s>',
        description: 'seconds not counted after a deploy, a recovery or an ack ends (default 120)',
        integer: true,
      },
      {
        flags: '--flap-budget <k>',
        description: 'failure events per application per hour; beyond it one "flapping" event and silence',
        integer: true,
      },
      { flags: '--events <file>', description: 'append every event to this file as NDJSON' },
      {
        flags: '--on-failure <argv>',
        description: 'a command as a JSON list, run (no shell) on each failure with the event JSON on stdin',
      },
      { flags: '--webhook <url>', description: 'POST every event as JSON here: http to 127.0.0.0/8 only' },
      {
        flags: '--auto-recover',
        description:
          'recover an application whose failure counts, if its profile says "watch": {"auto_recover": true}; needs --yes',
      },
      { flags: '--app <id>', description: 'only this application; repeatable', repeatable: true },
    ],
    examples: [
      [
        'persona watch --events /var/log/persona/watch.ndjson',
        'run until stopped (see contrib/persona-watch.service)',
      ],
      ['persona watch --once --app demo-web', 'cron or CI: exit 6 when demo-web is down'],
      [
        'persona watch --auto-recover --yes --json',
        'recover opted-in applications unattended; NDJSON events on stdout',
      ],
      [
        `persona watch --on-failure '["/usr/local/bin/page", "--team", "ops"]'`,
        'run a command on each failure, the event JSON on its stdin',
      ],
    ],
    streams: true,
    load: () => import('./commands/watch.js'),
  },
  {
    path: ['ack'],
    globals: ['store'],
    summary: 'silence watch for an application during maintenance (who, when, why, until when)',
    args: [{ name: 'app', description: 'application id' }],
    options: [
      { flags: '--reason <text>', description: 'why (required): kept with who and when' },
      { flags: '--for <duration>', description: 'lapses after 90s, 30m, 2h, 1d...; absent: until --clear' },
      { flags: '--clear', description: 'end the silence' },
      { flags: '--list', description: 'show every ack' },
    ],
    examples: [
      [
        'persona ack demo-web --reason "kernel update" --for 2h',
        'watch stays silent about demo-web for 2 hours',
      ],
      ['persona ack demo-web --clear', 'watch looks again (after its grace period)'],
      ['persona ack --list', 'who silenced what, and until when'],
    ],
    load: () => import('./commands/ack.js'),
  },
  {
    path: ['config'],
    summary:
      'show every setting, its value and where it came from: flag, env, config file (./persona.yaml, else ~/.config/persona/config.yaml), default',
    examples: [
      ['persona config', 'a table of key, value and source'],
      ['persona config --json', 'the same as one JSON object'],
    ],
    load: () => import('./commands/config.js'),
  },
  {
    path: ['doctor'],
    summary:
      'check this machine is ready (OpenSSH, rsync, ssh config, store, inventory, state dir, known_hosts): one line each with the fix; exit 4 on a fail; never connects to inventory hosts',
    examples: [
      ['persona doctor', 'before the first recovery on a workstation'],
      ['persona doctor --json', 'in CI: every check as JSON; exit 4 on any fail'],
    ],
    load: () => import('./commands/doctor.js'),
  },
  {
    path: ['runs', 'list'],
    globals: ['state', 'store'],
    summary: 'list recovery runs, newest first (from every machine when the store is shared)',
    examples: [['persona runs list', 'runs with their status and next step']],
    load: () => import('./commands/runs-list.js'),
  },
  {
    path: ['runs', 'show'],
    globals: ['state', 'store'],
    summary: "show one run's journal: steps, attempts, timings, evidence",
    args: [{ name: 'run', description: 'run id', required: true }],
    examples: [['persona runs show 20261127T031500Z-api-3f2a1c --json', 'the whole journal']],
    load: () => import('./commands/runs-show.js'),
  },
  {
    path: ['runs', 'resume'],
    globals: ['store', 'hosts', 'confirm', 'state'],
    summary: 'go on with a run from its journal (same as recover --resume)',
    args: [{ name: 'run', description: 'run id', required: true }],
    options: [dataFromOption],
    examples: [['persona runs resume 20261127T031500Z-api-3f2a1c --yes', 'non-interactively']],
    streams: true,
    load: () => import('./commands/runs-resume.js'),
  },
];
