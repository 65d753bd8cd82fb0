/**
 * Ansible's progress, as persona reads it. ansible-core ships no JSON callback (ansible.posix.json is a
 * collection), so persona writes its own stdout callback into the run's private directory: one JSON object per
 * line for every task start and every result. Results of `no_log` tasks carry their status and nothing else.
 * Reading the lines is pure, and tested.
 */
import { stripTerminalControls } from '../../util/sanitize.js';

export const CALLBACK_NAME = 'persona_ndjson';

/** The callback plugin (Python, loaded by ansible-playbook from ANSIBLE_CALLBACK_PLUGINS). */
export const CALLBACK_PLUGIN = `# persona's stdout callback: NDJSON events, one per line (written by persona for this run).
from __future__ import (absolute_import, division, print_function)
__metaclass__ = type

DOCUMENTATION = '''
    name: ${CALLBACK_NAME}
    type: stdout
    short_description: persona's NDJSON events
    description: One JSON object per line for each task start and each task result.
'''

import json
import sys

from ansible.plugins.callback import CallbackBase


def _text(value, limit=2000):
    if value is None:
        return None
    if not isinstance(value, str):
        value = str(value)
    return value[-limit:]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = '${CALLBACK_NAME}'

    def _emit(self, event):
        sys.stdout.write(json.dumps(event, sort_keys=True) + '\\n')
        sys.stdout.flush()

    def _id(self, task):
        try:
            value = (task.vars or {}).get('persona_id')
        except Exception:
            value = None
        return None if value is None else str(value)

    def _result(self, status, result, ignored=False):
        task = result._task
        res = result._result or {}
        event = {
            'event': 'result',
            'status': status,
            'host': result._host.get_name(),
            'task': task.get_name(),
            'action': task.action,
            'id': self._id(task),
        }
        if ignored:
            event['ignored'] = True
        if res.get('changed'):
            event['changed'] = True
        hidden = bool(task.no_log) or bool(res.get('_ansible_no_log')) or 'censored' in res
        if hidden:
            event['hidden'] = True
        else:
            for key in ('msg', 'skip_reason', 'stderr', 'module_stderr', 'module_stdout', 'rc', 'stdout'):
                if key in res and res[key] not in (None, ''):
                    event[key] = res[key] if key == 'rc' else _text(res[key])
        self._emit(event)

    def v2_playbook_on_play_start(self, play):
        self._emit({'event': 'play', 'name': play.get_name(), 'check': bool(play.check_mode)})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._emit({'event': 'task', 'task': task.get_name(), 'id': self._id(task)})

    def v2_playbook_on_handler_task_start(self, task):
        self._emit({'event': 'task', 'task': task.get_name(), 'id': self._id(task), 'handler': True})

    def v2_runner_on_ok(self, result):
        self._result('changed' if (result._result or {}).get('changed') else 'ok', result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result('failed', result, ignored=bool(ignore_errors))

    def v2_runner_on_skipped(self, result):
        self._result('skipped', result)

    def v2_runner_on_unreachable(self, result):
        self._result('unreachable', result)

    def v2_playbook_on_no_hosts_matched(self):
        self._emit({'event': 'no_hosts_matched'})

    def v2_playbook_on_stats(self, stats):
        hosts = {}
        for host in sorted(stats.processed.keys()):
            hosts[host] = stats.summarize(host)
        self._emit({'event': 'stats', 'hosts': hosts})
`;

export type ResultStatus = 'ok' | 'changed' | 'failed' | 'skipped' | 'unreachable';

export interface TaskResult {
  status: ResultStatus;
  host: string;
  task: string;
  action?: string;
  /** The persona_id var of a task persona generated: what the task makes true ("file:/etc/app.conf"). */
  id?: string;
  changed?: boolean;
  /** A failure that ignore_errors let through. */
  ignored?: boolean;
  /** no_log: nothing but the status is reported. */
  hidden?: boolean;
  msg?: string;
  skip_reason?: string;
  stderr?: string;
  stdout?: string;
  module_stderr?: string;
  module_stdout?: string;
  rc?: number;
}

export type AnsibleEvent =
  | { event: 'play'; name: string; check: boolean }
  | { event: 'task'; task: string; id?: string | null; handler?: boolean }
  | ({ event: 'result' } & TaskResult)
  | { event: 'no_hosts_matched' }
  | { event: 'stats'; hosts: Record<string, Record<string, number>> };

/** One line of the callback's output, or undefined for anything else (a warning Ansible printed to stdout). */
export function parseEvent(line: string): AnsibleEvent | undefined {
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const event = value as { event?: unknown; id?: unknown };
  if (!['play', 'task', 'result', 'no_hosts_matched', 'stats'].includes(String(event.event)))
    return undefined;
  if (event.id === null) delete event.id;
  return value as AnsibleEvent;
}

export function parseEvents(stdout: string): AnsibleEvent[] {
  return stdout
    .split('\n')
    .map(parseEvent)
    .filter((e): e is AnsibleEvent => e !== undefined);
}

/** What a check-mode result says about the real run. */
export type CheckVerdict = 'converged' | 'would change' | 'would run' | 'unknown';

/**
 * How a task's check-mode result reads: `changed` would change; a command skipped in check mode ("would have run",
 * "does not support check mode") would run; a failure let through by `ignore_errors` in check mode (a user that an
 * earlier task would create, a package missing from a stale apt cache) cannot be known before the earlier change;
 * anything else (ok, skipped because its condition is false) is as wanted.
 */
export function checkVerdict(r: TaskResult): CheckVerdict {
  if (r.status === 'changed') return 'would change';
  if (r.status === 'failed' && r.ignored) return 'unknown';
  if (r.status === 'skipped' && /would have run|does not support check mode/i.test(r.msg ?? ''))
    return 'would run';
  return 'converged';
}

/** Ansible's message for a failed result: msg, else the stderr or module output tail; control characters removed. */
export function failureText(r: TaskResult): string {
  if (r.hidden) return 'the output is hidden (no_log: the task handles a secret)';
  const parts = [r.msg, r.stderr, r.module_stderr, r.module_stdout]
    .map((p) => (p ?? '').trim())
    .filter(Boolean);
  const text = parts.length > 0 ? parts.join(': ') : r.rc !== undefined ? `exit code ${r.rc}` : 'no message';
  const clean = stripTerminalControls(text).replace(/\s*\n\s*/g, ' ⏎ ');
  return clean.length > 600 ? `${clean.slice(0, 599)}…` : clean;
}
